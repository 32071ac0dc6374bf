"""The error types a user can cause (bad data, settings, files); the CLI prints them without a traceback."""
from __future__ import annotations


def _user_errors() -> tuple[type[BaseException], ...]:
    from sortnet.config import ConfigError
    from sortnet.data.errors import DataError
    from sortnet.modelfile import ModelFileError
    from sortnet.models.spec import SpecError
    from sortnet.train.checkpoint import CheckpointError
    from sortnet.infer.export import ExportError
    from sortnet.infer.onnx_predict import OnnxModelError
    from sortnet.infer.stream import StreamError
    from sortnet.infer.use_cli import MissingExtraError

    return (ConfigError, DataError, ModelFileError, CheckpointError, SpecError, FileNotFoundError,
            ExportError, OnnxModelError, StreamError, MissingExtraError)


USER_ERRORS = _user_errors()
