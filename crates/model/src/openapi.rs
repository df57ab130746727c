//! OpenAPI schemas of the checked newtypes (the `openapi` feature): each is a string on the
//! wire, constrained as its `FromStr` constrains it.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::{HttpUrl, ServerId, Tag, Version};

fn string(
    description: &str,
    pattern: Option<&str>,
    max_length: usize,
    example: &str,
) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .min_length(Some(1))
        .max_length(Some(max_length))
        .examples([example])
}

impl PartialSchema for ServerId {
    fn schema() -> RefOr<Schema> {
        string(
            "A slug: lowercase letters, digits and '-', starting and ending with a letter or digit.",
            Some("^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"),
            64,
            "product-catalog",
        )
        .into()
    }
}

impl ToSchema for ServerId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ServerId")
    }
}

impl PartialSchema for Tag {
    fn schema() -> RefOr<Schema> {
        string(
            "A capability tag.",
            Some("^[a-z0-9][a-z0-9._-]{0,63}$"),
            64,
            "products",
        )
        .into()
    }
}

impl ToSchema for Tag {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Tag")
    }
}

impl PartialSchema for Version {
    fn schema() -> RefOr<Schema> {
        string(
            "A semantic version (semver 2.0); ranges and `latest` are not versions.",
            None,
            256,
            "1.2.0",
        )
        .into()
    }
}

impl ToSchema for Version {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Version")
    }
}

impl PartialSchema for HttpUrl {
    fn schema() -> RefOr<Schema> {
        string(
            "An absolute http or https URL, without user:password@ or #fragment.",
            Some("^https?://"),
            2048,
            "http://10.0.0.5:8080",
        )
        .format(Some(SchemaFormat::Custom("uri".into())))
        .into()
    }
}

impl ToSchema for HttpUrl {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HttpUrl")
    }
}
