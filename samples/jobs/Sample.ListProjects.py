"""List the projects of an ACC hub, and their top folders, as the job's submitter.

The job processor runs this for every job of type Sample.ListProjects (the
file's name). aps.connect(user=...) works here, and only here, for the Autodesk
ID that submitted the job.
"""

import aps
from hooks import job


@job("Sample.ListProjects")
def list_projects(job):
    conn = aps.connect(user=job.parameters["SubmittedByAutodeskId"])
    hub = conn.hubs[job.parameters.get("Hub", "build_JohnsCompany")]

    projects = []
    for project in conn.paginate(f"/project/v1/hubs/{hub.id}/projects"):
        folders = conn.paginate(
            f"/project/v1/hubs/{hub.id}/projects/{project['id']}/topFolders"
        )
        projects.append({
            "name": project["attributes"]["name"],
            "folders": [folder["attributes"]["name"] for folder in folders],
        })
    # What a job returns is kept with it: 'apshooks job ID' shows it.
    return projects
