"""Refuse to release a file that has no PDF yet.

A Restrictions handler runs before the operation; every restriction it adds
blocks the whole operation, and the user sees each file and its message.
"""

from hooks import on, restrict


@on("UpdateFileStates_Restrictions")
def no_release_without_pdf(files):
    for file in files:
        if file["new_state"] == "Released" and not file.get("pdf"):
            restrict(file["name"], "Create the PDF before releasing.")
