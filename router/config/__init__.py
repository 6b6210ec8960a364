"""The route table: its schema, reading it, reloading it live."""
