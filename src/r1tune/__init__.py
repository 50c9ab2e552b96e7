"""r1tune: fine-tune DeepSeek-R1 (or any causal LM) into a domain expert, end to end."""

__version__ = "0.1.0"
