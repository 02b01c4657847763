"""The single DynamoDB table: PynamoDB models (the schema) and repositories (the ports' implementations)."""
