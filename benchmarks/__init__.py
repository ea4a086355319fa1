"""Speed and memory measurements (not tests): each prints a table and saves JSON under results/."""
