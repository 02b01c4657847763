# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install browser run test lint typecheck unit bench package deploy deploy-preflight clean

# `make package` / `make deploy`: the stage and region deployed, and what `make deploy` gives the template.
STAGE ?= prod
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),eu-west-3)
PACKAGE_DIR := build/$(STAGE)
LINK_SECRET_PARAMETER ?= /relais/$(STAGE)/link-secret
STAFF_TOKEN_SECRET_PARAMETER ?=
MAILEVA_PARAMETER ?=
STAFF_JWKS_URL ?=
STAFF_JWT_ISSUER ?=
STAFF_JWT_AUDIENCE ?=
# The API's custom domain (https://…, docs/operations.md step 6): the base of the links in emails. Empty: execute-api.
PUBLIC_BASE_URL ?=

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the whole suite locally on an embedded moto AWS (PORT=8000, MOTO_PORT=5000 by default).
run: install
	$(BIN)/python -m chalicelib.local

## Debian's chromium for the browser tests, installed with apt-get when missing (as root, or through sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser tests..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

## ruff, mypy and every test (the browser ones included); exits non-zero on any failure. The API, unit
## and contract tests run on both cores (each worker has its own moto and ephemeral ports); the browser
## tests, one Chromium at a time, after them.
test: install browser lint typecheck package
	$(BIN)/python -m pytest -q -n 2 tests/unit tests/integration tests/contract
	$(BIN)/python -m pytest -q tests/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

## Figures, not assertions: prints a table and writes bench/results.json.
bench: install
	$(BIN)/python -m bench

## The stage's CloudFormation template (STAGE=prod by default) and code in build/<stage>/, checked by
## cfn-lint (zero errors, zero warnings). No AWS account is needed.
package: install
	rm -rf $(PACKAGE_DIR)
	RELAIS_STAGE=$(STAGE) AWS_DEFAULT_REGION=$(REGION) $(BIN)/chalice package --stage $(STAGE) \
		--merge-template infra/resources.yaml $(PACKAGE_DIR)
	$(BIN)/cfn-lint $(PACKAGE_DIR)/sam.yaml

## What `make deploy` needs before it starts: the AWS CLI, credentials that answer within seconds, and
## the values no default can guess. Fails with what is missing, never waits on a prompt or the network.
deploy-preflight:
	@aws --version >/dev/null 2>&1 || { echo "make deploy: the AWS CLI is not installed (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)." >&2; exit 1; }
	@test -n "$(DEPLOY_BUCKET)" || { echo "make deploy: set DEPLOY_BUCKET, an S3 bucket of yours in $(REGION) that receives the code package." >&2; exit 1; }
	@test -n "$(SENDER_ADDRESS)" || { echo "make deploy: set SENDER_ADDRESS, the SES identity every email is sent from." >&2; exit 1; }
	@test -n "$(ALARM_EMAIL)" || { echo "make deploy: set ALARM_EMAIL, who receives the alarms." >&2; exit 1; }
	@AWS_MAX_ATTEMPTS=1 AWS_METADATA_SERVICE_TIMEOUT=1 AWS_METADATA_SERVICE_NUM_ATTEMPTS=1 AWS_PAGER= \
		timeout 30 aws sts get-caller-identity --region $(REGION) --cli-connect-timeout 5 --cli-read-timeout 10 \
		>/dev/null 2>&1 || { echo "make deploy: no usable AWS credentials for $(REGION) (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)." >&2; exit 1; }

## Deploy a stage to the AWS account of your credentials, as the stack relais-<stage> (README "Deploying"):
##   make deploy STAGE=prod REGION=eu-west-3 DEPLOY_BUCKET=… SENDER_ADDRESS=… ALARM_EMAIL=…
## The SSM SecureStrings must exist first (LINK_SECRET_PARAMETER, /relais/<stage>/link-secret by default).
deploy: deploy-preflight package
	AWS_PAGER= aws cloudformation package --region $(REGION) --template-file $(PACKAGE_DIR)/sam.yaml \
		--s3-bucket $(DEPLOY_BUCKET) --s3-prefix relais-$(STAGE) --output-template-file $(PACKAGE_DIR)/packaged.yaml
	AWS_PAGER= aws cloudformation deploy --region $(REGION) --template-file $(PACKAGE_DIR)/packaged.yaml \
		--stack-name relais-$(STAGE) --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		--parameter-overrides Stage=$(STAGE) SenderAddress=$(SENDER_ADDRESS) AlarmEmail=$(ALARM_EMAIL) \
		LinkSecretParameter=$(LINK_SECRET_PARAMETER) StaffTokenSecretParameter=$(STAFF_TOKEN_SECRET_PARAMETER) \
		MailevaParameter=$(MAILEVA_PARAMETER) StaffJwksUrl=$(STAFF_JWKS_URL) StaffJwtIssuer=$(STAFF_JWT_ISSUER) \
		StaffJwtAudience=$(STAFF_JWT_AUDIENCE) PublicBaseUrl=$(PUBLIC_BASE_URL)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
