"""Errors the engine raises; a UserError is the job spec's fault, anything else is the system's."""


class UserError(Exception):
    """A problem with what the user asked for, e.g. a student whose vocabulary differs from the teacher's.

    `param` names the spec field at fault in dotted form, such as `student.layers` or `data.label_column`.
    """

    def __init__(self, message: str, *, code: str = "invalid_spec", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param
