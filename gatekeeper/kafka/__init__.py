"""The built-in Kafka protocol adapter."""
