"""When someone logs in to Vault, connect to APS and submit a job as that user.

Copy this file into your customizations folder and adapt the job type and its
parameters. The job runs on the job processor, connected as the Autodesk ID
that submitted it, without asking for consent again.
"""

import aps
from hooks import add_job, on


@on("LoginVault_Post")
def submit_project_listing(user):
    # The first connect() on a workstation opens the browser for consent;
    # after that it is silent. raise_on_error=False keeps the login going
    # even when APS cannot be reached.
    conn = aps.connect(raise_on_error=False)
    if not conn:
        print(f"Not connected to APS: {conn.error}")
        return

    add_job(
        "Sample.ListProjects",
        parameters={"SubmittedByAutodeskId": conn.user, "Hub": "build_JohnsCompany"},
        description=f"Job connecting to APS as Autodesk ID: {conn.user}",
        priority=10,
        submitter=user,
    )
