-- Northwind Outfitters demo shop (fictional outdoor-gear retailer).
-- SQLite schema + seed data for the graphyard reference customer-support agent.
-- Idempotent: safe to execute more than once against the same database.
-- All amounts are integer cents (USD). Timestamps are ISO 8601 (UTC).

CREATE TABLE IF NOT EXISTS customers (
    id    TEXT PRIMARY KEY,
    name  TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS orders (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    status          TEXT NOT NULL CHECK (status IN ('processing','shipped','delivered','cancelled','returned')),
    placed_at       TEXT NOT NULL,
    total_cents     INTEGER NOT NULL,
    carrier         TEXT,
    tracking_number TEXT,
    eta             TEXT
);

CREATE TABLE IF NOT EXISTS order_items (
    order_id         TEXT NOT NULL REFERENCES orders(id),
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
);

CREATE TABLE IF NOT EXISTS tickets (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    customer_email TEXT,
    order_id       TEXT,
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    priority       TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low','normal','high','urgent')),
    status         TEXT NOT NULL DEFAULT 'open'
);

CREATE INDEX IF NOT EXISTS idx_orders_customer ON orders(customer_id);
CREATE INDEX IF NOT EXISTS idx_tickets_order ON tickets(order_id);

-- Customers
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C001', 'Alice Moreno', 'alice.moreno@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C002', 'Ben Okafor', 'ben.okafor@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C003', 'Chloe Nguyen', 'chloe.nguyen@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C004', 'Daniel Fischer', 'daniel.fischer@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C005', 'Elena Petrova', 'elena.petrova@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C006', 'Farid Haddad', 'farid.haddad@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C007', 'Grace Kim', 'grace.kim@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C008', 'Hugo Lindqvist', 'hugo.lindqvist@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C009', 'Isabel Santos', 'isabel.santos@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C010', 'Jamal Wright', 'jamal.wright@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C011', 'Keiko Tanaka', 'keiko.tanaka@example.com');
INSERT OR IGNORE INTO customers (id, name, email) VALUES ('C012', 'Liam O''Connor', 'liam.oconnor@example.com');

-- Orders (carrier/tracking_number/eta are set only for shipped and delivered orders;
-- for delivered orders eta is the actual delivery date)
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1001', 'C001', 'delivered', '2026-01-05T14:12:00Z', 36800, 'UPS', '1Z9NW0010001', '2026-01-09');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1002', 'C002', 'delivered', '2026-01-07T09:30:00Z', 21700, 'FedEx', '7712000010002', '2026-01-12');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1003', 'C003', 'returned', '2026-01-10T18:45:00Z', 14900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1004', 'C004', 'delivered', '2026-01-14T11:05:00Z', 28600, 'USPS', '9400100000000000001004', '2026-01-19');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1005', 'C005', 'cancelled', '2026-01-18T20:22:00Z', 12800, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1006', 'C006', 'delivered', '2026-01-22T08:40:00Z', 22900, 'UPS', '1Z9NW0010006', '2026-01-27');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1007', 'C007', 'delivered', '2026-01-27T16:15:00Z', 17300, 'FedEx', '7712000010007', '2026-01-29');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1008', 'C001', 'returned', '2026-02-02T12:00:00Z', 15900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1009', 'C008', 'delivered', '2026-02-05T10:25:00Z', 12300, 'USPS', '9400100000000000001009', '2026-02-10');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1010', 'C009', 'delivered', '2026-02-09T13:50:00Z', 71500, 'UPS', '1Z9NW0010010', '2026-02-13');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1011', 'C010', 'cancelled', '2026-02-12T19:05:00Z', 7900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1012', 'C011', 'delivered', '2026-02-16T07:55:00Z', 34800, 'FedEx', '7712000010012', '2026-02-20');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1013', 'C012', 'returned', '2026-02-20T15:30:00Z', 17900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1014', 'C002', 'delivered', '2026-02-24T09:10:00Z', 17200, 'UPS', '1Z9NW0010014', '2026-02-27');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1015', 'C003', 'delivered', '2026-03-01T17:45:00Z', 8700, 'USPS', '9400100000000000001015', '2026-03-05');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1016', 'C004', 'cancelled', '2026-03-04T11:20:00Z', 24900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1017', 'C005', 'delivered', '2026-03-07T14:35:00Z', 22800, 'FedEx', '7712000010017', '2026-03-10');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1018', 'C006', 'returned', '2026-03-10T10:00:00Z', 18800, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1019', 'C007', 'delivered', '2026-03-13T16:50:00Z', 12800, 'UPS', '1Z9NW0010019', '2026-03-18');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1020', 'C008', 'shipped', '2026-03-17T09:15:00Z', 39900, 'UPS', '1Z9NW0010020', '2026-03-22');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1021', 'C009', 'shipped', '2026-03-18T12:40:00Z', 16300, 'FedEx', '7712000010021', '2026-03-20');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1022', 'C010', 'shipped', '2026-03-18T20:05:00Z', 38700, 'USPS', '9400100000000000001022', '2026-03-23');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1023', 'C011', 'shipped', '2026-03-19T08:30:00Z', 17900, 'UPS', '1Z9NW0010023', '2026-03-24');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1024', 'C012', 'shipped', '2026-03-19T15:10:00Z', 17800, 'FedEx', '7712000010024', '2026-03-21');
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1025', 'C001', 'processing', '2026-03-20T10:45:00Z', 12800, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1026', 'C002', 'processing', '2026-03-20T13:20:00Z', 37800, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1027', 'C003', 'processing', '2026-03-20T17:55:00Z', 8800, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1028', 'C004', 'processing', '2026-03-21T09:05:00Z', 20200, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1029', 'C005', 'processing', '2026-03-21T11:40:00Z', 15900, NULL, NULL, NULL);
INSERT OR IGNORE INTO orders (id, customer_id, status, placed_at, total_cents, carrier, tracking_number, eta) VALUES ('A1030', 'C006', 'processing', '2026-03-21T14:25:00Z', 26800, NULL, NULL, NULL);

-- Order items (total_cents on each order = SUM(quantity * unit_price_cents))
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1001', 'TNT-2P-TRL', 'Trailhead 2-Person Tent', 1, 24900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1001', 'SLP-PAD-INS', 'Insulated Sleeping Pad', 1, 11900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1002', 'BTS-HIK-10', 'Trailblazer Hiking Boots (10)', 1, 15900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1002', 'SCK-MRN-3P', 'Merino Hiking Socks 3-Pack', 2, 2900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1003', 'JKT-RAIN-M', 'Stormshell Rain Jacket (M)', 1, 14900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1004', 'BPK-45L-RDG', 'Ridgeline 45L Backpack', 1, 17900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1004', 'BTL-1L-STL', 'Insulated Steel Bottle 1L', 2, 3400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1004', 'HDL-300-LM', 'Beacon 300 Lumen Headlamp', 1, 3900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1005', 'STV-CMP-MNI', 'Mini Camp Stove', 1, 5900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1005', 'CKW-TI-SET', 'Titanium Cookset', 1, 6900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1006', 'SLB-20F-DWN', 'Alpine 20F Down Sleeping Bag', 1, 22900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1007', 'POL-TRK-CF', 'Carbon Trekking Poles (pair)', 1, 12900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1007', 'FLT-H2O-SQZ', 'Squeeze Water Filter', 1, 4400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1008', 'BTS-HIK-10', 'Trailblazer Hiking Boots (10)', 1, 15900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1009', 'BPK-28L-DAY', 'Summit 28L Daypack', 1, 8900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1009', 'BTL-1L-STL', 'Insulated Steel Bottle 1L', 1, 3400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1010', 'TNT-4P-BSC', 'Basecamp 4-Person Tent', 1, 39900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1010', 'SLP-PAD-INS', 'Insulated Sleeping Pad', 2, 11900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1010', 'HDL-300-LM', 'Beacon 300 Lumen Headlamp', 2, 3900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1011', 'JKT-FLC-L', 'Cascade Fleece Jacket (L)', 1, 7900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1012', 'SLB-20F-DWN', 'Alpine 20F Down Sleeping Bag', 1, 22900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1012', 'SLP-PAD-INS', 'Insulated Sleeping Pad', 1, 11900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1013', 'BPK-45L-RDG', 'Ridgeline 45L Backpack', 1, 17900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1014', 'CKW-TI-SET', 'Titanium Cookset', 1, 6900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1014', 'STV-CMP-MNI', 'Mini Camp Stove', 1, 5900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1014', 'FLT-H2O-SQZ', 'Squeeze Water Filter', 1, 4400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1015', 'SCK-MRN-3P', 'Merino Hiking Socks 3-Pack', 3, 2900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1016', 'TNT-2P-TRL', 'Trailhead 2-Person Tent', 1, 24900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1017', 'JKT-RAIN-M', 'Stormshell Rain Jacket (M)', 1, 14900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1017', 'JKT-FLC-L', 'Cascade Fleece Jacket (L)', 1, 7900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1018', 'BTS-HIK-10', 'Trailblazer Hiking Boots (10)', 1, 15900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1018', 'SCK-MRN-3P', 'Merino Hiking Socks 3-Pack', 1, 2900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1019', 'BPK-28L-DAY', 'Summit 28L Daypack', 1, 8900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1019', 'HDL-300-LM', 'Beacon 300 Lumen Headlamp', 1, 3900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1020', 'TNT-4P-BSC', 'Basecamp 4-Person Tent', 1, 39900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1021', 'POL-TRK-CF', 'Carbon Trekking Poles (pair)', 1, 12900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1021', 'BTL-1L-STL', 'Insulated Steel Bottle 1L', 1, 3400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1022', 'SLB-20F-DWN', 'Alpine 20F Down Sleeping Bag', 1, 22900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1022', 'SLP-PAD-INS', 'Insulated Sleeping Pad', 1, 11900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1022', 'HDL-300-LM', 'Beacon 300 Lumen Headlamp', 1, 3900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1023', 'BPK-45L-RDG', 'Ridgeline 45L Backpack', 1, 17900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1024', 'JKT-RAIN-M', 'Stormshell Rain Jacket (M)', 1, 14900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1024', 'SCK-MRN-3P', 'Merino Hiking Socks 3-Pack', 1, 2900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1025', 'STV-CMP-MNI', 'Mini Camp Stove', 1, 5900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1025', 'CKW-TI-SET', 'Titanium Cookset', 1, 6900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1026', 'TNT-2P-TRL', 'Trailhead 2-Person Tent', 1, 24900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1026', 'POL-TRK-CF', 'Carbon Trekking Poles (pair)', 1, 12900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1027', 'FLT-H2O-SQZ', 'Squeeze Water Filter', 2, 4400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1028', 'BPK-28L-DAY', 'Summit 28L Daypack', 1, 8900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1028', 'JKT-FLC-L', 'Cascade Fleece Jacket (L)', 1, 7900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1028', 'BTL-1L-STL', 'Insulated Steel Bottle 1L', 1, 3400);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1029', 'BTS-HIK-10', 'Trailblazer Hiking Boots (10)', 1, 15900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1030', 'SLB-20F-DWN', 'Alpine 20F Down Sleeping Bag', 1, 22900);
INSERT OR IGNORE INTO order_items (order_id, sku, name, quantity, unit_price_cents) VALUES ('A1030', 'HDL-300-LM', 'Beacon 300 Lumen Headlamp', 1, 3900);
