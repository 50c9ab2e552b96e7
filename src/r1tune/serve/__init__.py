"""Serve stage: the OpenAI-compatible server (see issue "Serving"); not implemented yet."""
