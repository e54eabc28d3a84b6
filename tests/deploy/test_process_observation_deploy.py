"""bin/deploy process-observation --dry-run: Cloud Run on two vCPUs and 4 GiB with its push
subscription and dead letter, and a Cloud Scheduler job calling its POST /sweep
(``process --pending``) with the push identity's token."""

from __future__ import annotations

from panoptes_network.stack import deploy

from tests.deploy.script import clean_environment, dry_run
from tests.deploy.test_deploy_plan import (ARGS, INVOKER, PROJECT, REGION, account, check_common, check_push_service,
                                           deployed_env, present)

SERVICE = "process-observation"


def test_process_observation_is_a_push_service_with_a_scheduled_sweep():
    present(SERVICE)
    script = dry_run(SERVICE, *ARGS, env=clean_environment())
    check_common(script, SERVICE)
    check_push_service(script, SERVICE)
    deployed = script.one("gcloud", "run", "deploy", SERVICE)
    assert deployed.flag("cpu") == "2" and deployed.flag("memory") == "4Gi" and deployed.flag("concurrency") == "1"
    environment = deployed_env(deployed)
    assert environment["PROCESS_OBSERVATION_TOPIC"] == "process-observation"
    assert environment["PROCESSED_BUCKET"] == "panoptes-processed-images"
    subscription = script.one("gcloud", "pubsub", "subscriptions", "create", SERVICE)
    assert subscription.flag("topic") == "process-observation"
    assert subscription.flag("dead-letter-topic")

    url = f"https://{SERVICE}-${{PROJECT_NUMBER}}.{REGION}.run.app"
    check = script.one("gcloud", "scheduler", "jobs", "describe", deploy.SWEEP_JOB, role="check")
    for role in ("create", "update"):
        command = script.one("gcloud", "scheduler", "jobs", role, "http", deploy.SWEEP_JOB, role=role)
        assert command.flag("uri") == f"{url}/sweep" and command.flag("http-method") == "POST"
        assert command.flag("schedule") == deploy.SWEEP_SCHEDULE and command.flag("location") == REGION
        assert command.flag("oidc-service-account-email") == INVOKER and command.flag("oidc-token-audience") == url
        assert command.flag("project") == PROJECT
    # The sweep publishes: the service's own identity may.
    roles = [c.flag("role") for c in script.find("gcloud", "projects", "add-iam-policy-binding", PROJECT)
             if c.flag("member") == f"serviceAccount:{account(SERVICE)}"]
    assert "roles/pubsub.publisher" in roles
    assert "cloudscheduler.googleapis.com" in script.one("gcloud", "services", "enable").positional
    assert script.index(deployed) < script.index(check)  # the job calls a service that exists


def test_other_services_get_no_sweep_job():
    present("plate-solve")
    assert not dry_run("plate-solve", *ARGS, env=clean_environment()).find("gcloud", "scheduler")
