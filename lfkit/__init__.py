"""lfkit: a LLaMA-Factory extension kit for Text-to-SQL post-training."""

__version__ = "0.1.0"
