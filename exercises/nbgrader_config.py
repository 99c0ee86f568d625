"""nbgrader settings of the ewclab course (this folder is the course directory).

Run nbgrader from this folder, e.g. ``nbgrader generate_assignment ewc_penalty --force``
(see README.md here). Source notebooks live in ``source/<assignment>/``; the student
versions nbgrader writes go to ``release/``.
"""

c = get_config()  # noqa: F821 - injected by nbgrader/traitlets when this file is loaded

c.CourseDirectory.course_id = "ewclab"
# Autograding runs each notebook top to bottom; none takes more than a few seconds.
c.ExecutePreprocessor.timeout = 300
# Student versions start without outputs; the solution markers become a stub.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
