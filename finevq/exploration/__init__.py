"""Exploring a model's predictions against ground truth (what notebooks/explore_predictions.ipynb uses):
`predictions` runs and caches them, `tables` turns them into dataframes, `figures` draws them."""
