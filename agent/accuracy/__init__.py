"""Accuracy: spot-labeled sets, metrics, the accuracy check, baselines, recall drift statistics,
shadow evaluation and live labels, plots.
"""
