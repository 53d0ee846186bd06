"""Pure standard-library logic shared by the CDK app, the Lambda handlers and the operator CLI.

Nothing in this package may import aws_cdk, boto3 or any third-party library: Lambda handlers
package it next to their code and the CLI imports it as is.
"""
