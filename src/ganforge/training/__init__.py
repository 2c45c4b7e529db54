"""Training: the one loop and what it needs. Tools outside this package use only the names below."""

from ganforge.training.loop import train
from ganforge.training.precision import DTYPES
from ganforge.training.resumable import check_resumable
from ganforge.training.session import start_or_resume

__all__ = ["DTYPES", "check_resumable", "start_or_resume", "train"]
