"""bin/deploy compress-fits --schedule-reconcile CRON --dry-run: a Cloud Scheduler job runs
reconcile --fix through compress-fits' POST /reconcile, with the push identity's token."""

from __future__ import annotations

from panoptes_network.stack import deploy

from tests.deploy.script import clean_environment, dry_run, run_deploy
from tests.deploy.test_deploy_plan import ARGS, INVOKER, PROJECT, REGION, account, present
from tests.deploy.test_deploy_plan import gcloud_tree  # noqa: F401  (a fixture)

SCHEDULE = "17 */6 * * *"


def test_schedule_reconcile_makes_or_updates_one_scheduler_job_calling_compress_fits():
    present("compress-fits")
    script = dry_run("compress-fits", *ARGS, "--schedule-reconcile", SCHEDULE, env=clean_environment())
    url = f"https://compress-fits-${{PROJECT_NUMBER}}.{REGION}.run.app"
    check = script.one("gcloud", "scheduler", "jobs", "describe", deploy.RECONCILE_JOB, role="check")
    create = script.one("gcloud", "scheduler", "jobs", "create", "http", deploy.RECONCILE_JOB, role="create")
    update = script.one("gcloud", "scheduler", "jobs", "update", "http", deploy.RECONCILE_JOB, role="update")
    for command in (create, update):
        assert command.flag("schedule") == SCHEDULE and command.flag("uri") == f"{url}/reconcile"
        assert command.flag("http-method") == "POST" and command.flag("location") == REGION
        # The token compress-fits checks on its pushes: the same account, its own URL as audience.
        assert command.flag("oidc-service-account-email") == INVOKER and command.flag("oidc-token-audience") == url
        assert command.flag("project") == PROJECT
    assert check.flag("location") == REGION
    roles = [c.flag("role") for c in script.find("gcloud", "projects", "add-iam-policy-binding", PROJECT)
             if c.flag("member") == f"serviceAccount:{account('compress-fits')}"]
    assert roles == [*deploy.DEPLOYMENTS["compress-fits"].roles, "roles/pubsub.publisher"]
    enable = script.find("gcloud", "services", "enable")
    assert ["cloudscheduler.googleapis.com"] in [c.positional[3:] for c in enable]
    # After compress-fits is deployed (its URL answers), never before.
    deployed = script.one("gcloud", "run", "deploy", "compress-fits")
    assert script.index(deployed) < script.index(check)


def test_no_schedule_no_job_and_a_bad_schedule_is_refused():
    present("compress-fits")
    assert not dry_run("compress-fits", *ARGS, env=clean_environment()).find("gcloud", "scheduler")
    refused = run_deploy("compress-fits", *ARGS, "--schedule-reconcile", "hourly", "--dry-run",
                         env=clean_environment(), check=False)
    assert refused.returncode == 2 and "is not a cron schedule" in refused.stderr and refused.stdout == ""


def test_the_scheduler_commands_exist_in_gcloud(gcloud_tree):
    from tests.deploy.script import parse

    target = deploy.Target(PROJECT, REGION, deploy.Settings.from_env({}), reconcile_schedule=SCHEDULE)
    script = parse("\n".join(step.render() for step in deploy.reconcile_steps(target)))
    for command in script.commands:
        node = gcloud_tree
        for word in command.argv[1:]:
            if word.startswith("-") or word not in node.get("commands", {}):
                break
            node = node["commands"][word]
        assert not node.get("commands"), command.argv
        known = {**gcloud_tree["flags"], **node.get("flags", {})}
        assert all(f"--{name}" in known for name in command.flags), (command.argv, sorted(known))
