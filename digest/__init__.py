"""digest: a self-hostable daily paper digest recommender."""

__version__ = "0.1.0"
