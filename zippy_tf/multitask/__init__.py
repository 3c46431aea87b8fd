"""multitask."""
