"""What a streaming session is made of, shared by its processes and its supervisor: the one
table of session options (:mod:`core.session.options`)."""
