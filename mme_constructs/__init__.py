"""Reusable CDK constructs of this project.

The design card calls this folder ``constructs/``; a Python package of that name would shadow the
``constructs`` library that aws-cdk-lib itself imports, so it is ``mme_constructs``.
"""
