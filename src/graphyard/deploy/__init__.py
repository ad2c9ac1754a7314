"""Deployment files for graphyard, rendered from its configuration (``graphyard deploy``).

Only AWS Lambda for now: a container image behind a streaming Function URL, DynamoDB for
thread state, and Tailscale to reach a private Ollama box. See docs/deploy-lambda.md.
"""

from graphyard.deploy._lambda import (
    FILES,
    LambdaOptions,
    lambda_options,
    render_lambda,
    write_lambda,
)

__all__ = ["FILES", "LambdaOptions", "lambda_options", "render_lambda", "write_lambda"]
