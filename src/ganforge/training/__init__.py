"""Training: the one loop and what it needs. Tools outside this package use only the names below."""

from ganforge.training.loop import train
from ganforge.training.precision import DTYPES
from ganforge.training.resumable import check_resumable
from ganforge.training.run_config import ResolvedRun, RunRequest, model_summary, resolve_run
from ganforge.training.session import Run, start_or_resume, train_from_paths

__all__ = ["DTYPES", "ResolvedRun", "Run", "RunRequest", "check_resumable", "model_summary", "resolve_run",
           "start_or_resume", "train", "train_from_paths"]
