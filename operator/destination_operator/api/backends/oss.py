"""The Alibaba Cloud OSS block and its 23 regions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from ..rules import (
    AnyRule,
    Checks,
    RuleModel,
    endpoint_rules,
    immutable,
    immutable_optional,
    pattern_rule,
)

__all__ = [
    "AlibabaOSS",
    "OSSRegion",
]


class OSSRegion(StrEnum):
    """The 23 Alibaba Cloud OSS region ids."""

    CN_HANGZHOU = "oss-cn-hangzhou"
    CN_SHANGHAI = "oss-cn-shanghai"
    CN_QINGDAO = "oss-cn-qingdao"
    CN_BEIJING = "oss-cn-beijing"
    CN_ZHANGJIAKOU = "oss-cn-zhangjiakou"
    CN_HUHEHAOTE = "oss-cn-huhehaote"
    CN_WULANCHABU = "oss-cn-wulanchabu"
    CN_SHENZHEN = "oss-cn-shenzhen"
    CN_HEYUAN = "oss-cn-heyuan"
    CN_GUANGZHOU = "oss-cn-guangzhou"
    CN_CHENGDU = "oss-cn-chengdu"
    CN_HONGKONG = "oss-cn-hongkong"
    US_WEST_1 = "oss-us-west-1"
    US_EAST_1 = "oss-us-east-1"
    AP_SOUTHEAST_1 = "oss-ap-southeast-1"
    AP_SOUTHEAST_2 = "oss-ap-southeast-2"
    AP_SOUTHEAST_3 = "oss-ap-southeast-3"
    AP_SOUTHEAST_5 = "oss-ap-southeast-5"
    AP_NORTHEAST_1 = "oss-ap-northeast-1"
    AP_SOUTH_1 = "oss-ap-south-1"
    EU_CENTRAL_1 = "oss-eu-central-1"
    EU_WEST_1 = "oss-eu-west-1"
    ME_EAST_1 = "oss-me-east-1"


class AlibabaOSS(RuleModel):
    """An Alibaba Cloud Object Storage Service (OSS) bucket. The Secret
    (spec.credentials.secretRef.name) must hold accessKeyId and accessKeySecret.
    """

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing bucket: 3-63 lowercase letters, digits and '-', starting "
                "and ending with a letter or digit. Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.alibabaOSS.bucket",
                "^[a-z0-9][-a-z0-9]*[a-z0-9]$",
                "must use only lowercase letters, digits and '-', "
                "and start and end with a letter or digit",
            ),
            immutable("spec.alibabaOSS.bucket"),
        ),
    ]
    region: Annotated[
        OSSRegion,
        Field(
            strict=False,
            description="OSS region id of the bucket, such as oss-cn-hangzhou. Immutable.",
        ),
        Checks(immutable("spec.alibabaOSS.region")),
    ]
    endpoint: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "Override of the OSS endpoint (such as an internal or accelerated endpoint); "
                    "unset: https://<region>.aliyuncs.com. Immutable."
                ),
            ),
            Checks(*endpoint_rules("spec.alibabaOSS.endpoint")),
        ]
        | None
    ) = None

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        immutable_optional("spec.alibabaOSS.endpoint", "endpoint", "endpoint"),
    )

    def location(self) -> str:
        """Where data goes: `oss://<bucket>`."""
        return f"oss://{self.bucket}"
