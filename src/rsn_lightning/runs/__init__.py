"""What a run leaves on disk and how it is read back: job records, sweep folders and their summaries,
wandb's offline files. Plain files and numbers: no torch, no matplotlib."""
