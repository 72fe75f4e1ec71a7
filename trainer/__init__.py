"""The parts of the budget-limited MLM pretrainer that train.py puts together."""
