"""One exception family. Each carries a message a user can act on: what went wrong,
which file, and the fix. The CLI prints it as one red line and exits non-zero."""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base of every error the tool reports to a user (never shown as a traceback)."""

    exit_code = 1


class ConfigError(AnnotatorError):
    """annotator.toml or a command-line option is wrong."""

    exit_code = 2


class WorkspaceError(AnnotatorError):
    """The workspace is missing, not initialised, or inconsistent."""


class WorkspaceBusy(WorkspaceError):
    """Another command holds the workspace's write lock."""

    exit_code = 3


class InputFileError(AnnotatorError):
    """A photo or label file cannot be used; `path` names it, `reason` is a short code."""

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason
        self.detail = message

    def __reduce__(self):  # picklable, so worker processes can return it
        return (type(self), (self.path, self.reason, self.detail))


class LabelStudioError(AnnotatorError):
    """Label Studio is unreachable, refused our token, or lost a project or task."""

    exit_code = 4


class TrainingError(AnnotatorError):
    """A detector could not be built, trained or loaded."""
