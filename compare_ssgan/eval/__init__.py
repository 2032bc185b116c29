"""Evaluation utilities (FID, KID, Inception Score) for compare_ssgan."""
