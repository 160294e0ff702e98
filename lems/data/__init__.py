"""Market data: loading, validation, resampling, calendar, features and windows."""

from lems.data.resample import resample_bars

__all__ = ["resample_bars"]
