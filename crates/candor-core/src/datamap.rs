//! The data map: privacy as code.
//!
//! One versioned TOML file declares the data categories a business holds, the purposes it uses
//! them for (with legal basis, needed categories and retention), and the recipients it shares them
//! with. Access decisions read it; so will the risk assessment and the privacy notice.
//!
//! Parsing happens in two steps: serde reads the file into `raw` structs that keep source spans,
//! then [`DataMap::parse`] checks every cross-reference and reports the line of the first problem.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::ids::{CategoryKey, PurposeId, RecipientId};
use crate::taxonomy::is_fideslang_category;

/// The lawful bases of GDPR Art. 6(1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(a): the customer agreed; reads need consent in force.
    Consent,
    /// Art. 6(1)(b): needed to perform a contract with the customer.
    Contract,
    /// Art. 6(1)(c): needed to comply with the law.
    LegalObligation,
    /// Art. 6(1)(f): the business's legitimate interest, balanced against the customer's.
    LegitimateInterest,
    /// Art. 6(1)(d): to protect someone's life.
    VitalInterest,
    /// Art. 6(1)(e): a task in the public interest.
    PublicTask,
}

impl LegalBasis {
    /// Whether reads under this basis need the customer's consent in force.
    pub fn needs_consent(self) -> bool {
        matches!(self, LegalBasis::Consent)
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::LegitimateInterest => "legitimate_interest",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::PublicTask => "public_task",
        }
    }
}

/// What kind of party receives data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// A service of the business itself.
    Internal,
    /// Processes data on the business's behalf under contract (GDPR Art. 28).
    Processor,
    /// Uses the data for its own ends.
    ThirdParty,
}

impl RecipientKind {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Internal => "internal",
            RecipientKind::Processor => "processor",
            RecipientKind::ThirdParty => "third_party",
        }
    }
}

mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DataMap {
        pub version: Spanned<String>,
        pub controller: Controller,
        #[serde(default)]
        pub categories: Vec<Category>,
        #[serde(default)]
        pub recipients: Vec<Recipient>,
        #[serde(default)]
        pub purposes: Vec<Purpose>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Controller {
        pub name: String,
        pub contact: String,
        pub jurisdiction: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Category {
        pub key: Spanned<String>,
        pub description: String,
        #[serde(default)]
        pub custom: bool,
        #[serde(default)]
        pub lookup: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Recipient {
        pub id: Spanned<String>,
        pub name: String,
        pub kind: RecipientKind,
        pub jurisdiction: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Purpose {
        pub id: Spanned<String>,
        pub description: String,
        pub legal_basis: LegalBasis,
        pub categories: Spanned<Vec<Spanned<String>>>,
        pub retention_days: Spanned<u32>,
        #[serde(default)]
        pub recipients: Vec<Spanned<String>>,
        #[serde(default)]
        pub sells_or_shares: bool,
    }
}

/// A data category the business holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    /// The fideslang key, e.g. `user.contact.email`.
    key: CategoryKey,
    /// Plain-language description for the notice.
    description: String,
    /// Whether services may find a customer by this value (through a blind index).
    lookup: bool,
}

/// A party that receives data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Short id used in purposes, consents and keys.
    id: RecipientId,
    /// Display name.
    name: String,
    /// Internal, processor or third party.
    kind: RecipientKind,
    /// Where it processes data (ISO 3166 code or region such as `EU`).
    jurisdiction: String,
}

/// A purpose of processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purpose {
    /// The id, a fideslang data-use key where one fits.
    id: PurposeId,
    /// Plain-language description for the notice.
    description: String,
    /// Why processing is lawful.
    legal_basis: LegalBasis,
    /// The data categories this purpose needs; reads get nothing else.
    categories: BTreeSet<CategoryKey>,
    /// How long data collected for this purpose is kept.
    retention_days: u32,
    /// Recipients that may receive data for this purpose.
    recipients: BTreeSet<RecipientId>,
    /// Whether this purpose sells or shares data (CCPA/CPRA); a GPC signal withdraws consent to it.
    sells_or_shares: bool,
}

/// The whole validated data map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMap {
    /// The version of the map (and the notice generated from it).
    version: String,
    /// The business responsible (GDPR's controller).
    controller_name: String,
    /// Where customers reach the privacy team.
    controller_contact: String,
    /// The controller's main jurisdiction.
    controller_jurisdiction: String,
    /// Categories by key.
    categories: BTreeMap<CategoryKey, Category>,
    /// Recipients by id.
    recipients: BTreeMap<RecipientId, Recipient>,
    /// Purposes by id.
    purposes: BTreeMap<PurposeId, Purpose>,
}

/// A data-map problem, located in the source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct DataMapError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl DataMapError {
    fn at(source: &str, span: Range<usize>, message: impl Into<String>) -> DataMapError {
        let before = &source[..span.start.min(source.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        DataMapError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Every problem a data map has, in the order they appear in the source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct DataMapErrors(Vec<DataMapError>);

impl DataMapErrors {
    /// Each problem, first in the source first; never empty.
    pub fn all(&self) -> &[DataMapError] {
        &self.0
    }

    /// The first problem in the source.
    pub fn first(&self) -> &DataMapError {
        &self.0[0]
    }
}

impl DataMap {
    /// Parses and validates a data map, naming the line of every problem it finds (a syntax or
    /// schema error stops the reading at once, so it is the only one reported).
    pub fn parse(source: &str) -> Result<DataMap, DataMapErrors> {
        let raw: raw::DataMap = toml::from_str(source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            DataMapErrors(vec![DataMapError::at(
                source,
                span,
                e.message().trim_end().to_owned(),
            )])
        })?;
        let mut errors: Vec<(usize, DataMapError)> = Vec::new();
        let mut err = |span: Range<usize>, msg: String| {
            errors.push((span.start, DataMapError::at(source, span, msg)));
        };

        if raw.version.get_ref().trim().is_empty() {
            err(raw.version.span(), "version must not be empty".into());
        }

        let mut categories = BTreeMap::new();
        for c in raw.categories {
            let raw_key = c.key.get_ref();
            let Some(key) = CategoryKey::parse(raw_key)
                .ok()
                .filter(|k| k.as_str().starts_with("user."))
            else {
                err(
                    c.key.span(),
                    format!("category `{raw_key}` must be a dotted lowercase key under `user.`"),
                );
                continue;
            };
            if !c.custom && !is_fideslang_category(key.as_str()) {
                err(
                    c.key.span(),
                    format!(
                        "`{key}` is not a fideslang data category; fix the spelling, \
                         or set `custom = true` to declare your own"
                    ),
                );
                continue;
            }
            let category = Category {
                key: key.clone(),
                description: c.description,
                lookup: c.lookup,
            };
            if categories.insert(key.clone(), category).is_some() {
                err(c.key.span(), format!("category `{key}` is declared twice"));
            }
        }

        let mut recipients = BTreeMap::new();
        for r in raw.recipients {
            let raw_id = r.id.get_ref();
            let Ok(id) = RecipientId::parse(raw_id) else {
                err(
                    r.id.span(),
                    format!(
                        "recipient id `{raw_id}` must be lowercase letters, digits, '_' or '.'"
                    ),
                );
                continue;
            };
            let recipient = Recipient {
                id: id.clone(),
                name: r.name,
                kind: r.kind,
                jurisdiction: r.jurisdiction,
            };
            if recipients.insert(id.clone(), recipient).is_some() {
                err(r.id.span(), format!("recipient `{id}` is declared twice"));
            }
        }

        let mut purposes = BTreeMap::new();
        for p in raw.purposes {
            let raw_id = p.id.get_ref();
            let Ok(id) = PurposeId::parse(raw_id) else {
                err(
                    p.id.span(),
                    format!("purpose id `{raw_id}` must be a dotted lowercase key"),
                );
                continue;
            };
            if p.categories.get_ref().is_empty() {
                err(
                    p.categories.span(),
                    format!("purpose `{id}` must need at least one category"),
                );
            }
            let mut needed = BTreeSet::new();
            for c in p.categories.get_ref() {
                let Some(category) = categories.get(c.get_ref().as_str()) else {
                    err(
                        c.span(),
                        format!(
                            "purpose `{id}` needs `{}`, which is not declared under [[categories]]",
                            c.get_ref()
                        ),
                    );
                    continue;
                };
                if !needed.insert(category.key.clone()) {
                    err(c.span(), format!("`{}` is listed twice", c.get_ref()));
                }
            }
            if *p.retention_days.get_ref() == 0 {
                err(
                    p.retention_days.span(),
                    "retention_days must be at least 1".into(),
                );
            }
            let mut allowed = BTreeSet::new();
            for r in &p.recipients {
                let Some(recipient) = recipients.get(r.get_ref().as_str()) else {
                    err(
                        r.span(),
                        format!(
                            "purpose `{id}` names recipient `{}`, which is not declared under [[recipients]]",
                            r.get_ref()
                        ),
                    );
                    continue;
                };
                allowed.insert(recipient.id.clone());
            }
            let purpose = Purpose {
                id: id.clone(),
                description: p.description,
                legal_basis: p.legal_basis,
                categories: needed,
                retention_days: *p.retention_days.get_ref(),
                recipients: allowed,
                sells_or_shares: p.sells_or_shares,
            };
            if purposes.insert(id.clone(), purpose).is_some() {
                err(p.id.span(), format!("purpose `{id}` is declared twice"));
            }
        }

        if !errors.is_empty() {
            errors.sort_by_key(|(at, _)| *at);
            return Err(DataMapErrors(errors.into_iter().map(|(_, e)| e).collect()));
        }
        Ok(DataMap {
            version: raw.version.into_inner(),
            controller_name: raw.controller.name,
            controller_contact: raw.controller.contact,
            controller_jurisdiction: raw.controller.jurisdiction,
            categories,
            recipients,
            purposes,
        })
    }

    /// The version of the map (and the notice generated from it).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The business responsible (GDPR's controller).
    pub fn controller_name(&self) -> &str {
        &self.controller_name
    }

    /// Where customers reach the privacy team.
    pub fn controller_contact(&self) -> &str {
        &self.controller_contact
    }

    /// The controller's main jurisdiction.
    pub fn controller_jurisdiction(&self) -> &str {
        &self.controller_jurisdiction
    }

    /// Every category, by key.
    pub fn categories(&self) -> impl Iterator<Item = &Category> {
        self.categories.values()
    }

    /// The category with this key.
    pub fn category(&self, key: &str) -> Option<&Category> {
        self.categories.get(key)
    }

    /// Every recipient, by id.
    pub fn recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.values()
    }

    /// The recipient with this id.
    pub fn recipient(&self, id: &str) -> Option<&Recipient> {
        self.recipients.get(id)
    }

    /// Every purpose, by id.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.purposes.values()
    }

    /// The purpose with this id.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.get(id)
    }
}

impl Category {
    /// The fideslang key, e.g. `user.contact.email`.
    pub fn key(&self) -> &CategoryKey {
        &self.key
    }

    /// Plain-language description for the notice.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether services may find a customer by this value (through a blind index).
    pub fn lookup(&self) -> bool {
        self.lookup
    }
}

impl Recipient {
    /// Short id used in purposes, consents and keys.
    pub fn id(&self) -> &RecipientId {
        &self.id
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Internal, processor or third party.
    pub fn kind(&self) -> RecipientKind {
        self.kind
    }

    /// Where it processes data (ISO 3166 code or region such as `EU`).
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }
}

impl Purpose {
    /// The id, a fideslang data-use key where one fits.
    pub fn id(&self) -> &PurposeId {
        &self.id
    }

    /// Plain-language description for the notice.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Why processing is lawful.
    pub fn legal_basis(&self) -> LegalBasis {
        self.legal_basis
    }

    /// Whether this purpose needs the category `key`; reads get nothing else.
    pub fn needs(&self, key: &str) -> bool {
        self.categories.contains(key)
    }

    /// The data categories this purpose needs.
    pub fn categories(&self) -> impl Iterator<Item = &CategoryKey> {
        self.categories.iter()
    }

    /// How long data collected for this purpose is kept.
    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Whether `id` is declared as a recipient for this purpose.
    pub fn allows_recipient(&self, id: &str) -> bool {
        self.recipients.contains(id)
    }

    /// Recipients that may receive data for this purpose.
    pub fn recipients(&self) -> impl Iterator<Item = &RecipientId> {
        self.recipients.iter()
    }

    /// Whether this purpose sells or shares data (CCPA/CPRA); a GPC signal withdraws consent to it.
    pub fn sells_or_shares(&self) -> bool {
        self.sells_or_shares
    }
}

/// A realistic data map for an online shop, written by `candor init`.
pub const SAMPLE_DATA_MAP: &str = include_str!("sample_datamap.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> DataMapError {
        DataMap::parse(source)
            .expect_err("should be refused")
            .first()
            .clone()
    }

    #[test]
    fn the_sample_is_valid_and_complete() {
        let map = DataMap::parse(SAMPLE_DATA_MAP).unwrap();
        for id in [
            "essential.service.operations",
            "essential.service.payment_processing",
            "essential.fraud_detection",
            "marketing.communications.email",
            "personalize.content",
            "analytics.reporting",
            "third_party_sharing",
        ] {
            assert!(map.purpose(id).is_some(), "sample lacks {id}");
        }
        assert!(
            map.recipients()
                .any(|r| r.kind() == RecipientKind::ThirdParty)
        );
        assert!(map.purposes().any(Purpose::sells_or_shares));
    }

    #[test]
    fn an_undeclared_category_names_its_line() {
        let src = SAMPLE_DATA_MAP.replacen(
            "categories = [\"user.contact.email\"]",
            "categories = [\"user.contact.phone\"]",
            1,
        );
        assert_ne!(src, SAMPLE_DATA_MAP, "fixture edit must apply");
        let e = error_of(&src);
        let expected_line = src
            .lines()
            .position(|l| l.contains("[\"user.contact.phone\"]"))
            .unwrap()
            + 1;
        assert_eq!(e.line, expected_line, "{e}");
        assert!(e.message.contains("user.contact.phone"), "{e}");
    }

    #[test]
    fn a_misspelt_taxonomy_key_is_refused_unless_custom() {
        let base =
            "version = \"1\"\n[controller]\nname = \"x\"\ncontact = \"y\"\njurisdiction = \"EU\"\n";
        let e = error_of(&format!(
            "{base}[[categories]]\nkey = \"user.contact.emial\"\ndescription = \"d\"\n"
        ));
        assert_eq!((e.line, e.column), (7, 7), "{e}");
        assert!(e.message.contains("custom = true"), "{e}");
        let ok = DataMap::parse(&format!(
            "{base}[[categories]]\nkey = \"user.loyalty.tier\"\ndescription = \"d\"\ncustom = true\n"
        ));
        assert!(ok.is_ok());
    }

    #[test]
    fn syntax_and_schema_errors_carry_positions() {
        let e = error_of("version = \"1\"\n[controller\n");
        assert_eq!(e.line, 2, "{e}");
        let e = error_of(
            "version = \"1\"\n[controller]\nname = \"x\"\ncontact = \"y\"\njurisdiction = \"EU\"\ncolour = 1\n",
        );
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("colour"), "{e}");
        let src =
            SAMPLE_DATA_MAP.replacen("legal_basis = \"contract\"", "legal_basis = \"vibes\"", 1);
        let e = error_of(&src);
        assert!(
            e.message.contains("consent"),
            "lists the accepted values: {e}"
        );
    }

    #[test]
    fn undeclared_recipients_and_duplicates_are_refused() {
        let src =
            SAMPLE_DATA_MAP.replacen("recipients = [\"parcelgo\"]", "recipients = [\"dhl\"]", 1);
        assert!(error_of(&src).message.contains("`dhl`"));
        let twice = format!(
            "{SAMPLE_DATA_MAP}\n[[categories]]\nkey = \"user.contact.email\"\ndescription = \"again\"\n"
        );
        assert!(error_of(&twice).message.contains("declared twice"));
    }

    #[test]
    fn every_problem_is_reported_in_source_order() {
        let src = SAMPLE_DATA_MAP
            .replacen("recipients = [\"parcelgo\"]", "recipients = [\"dhl\"]", 1)
            .replacen("retention_days = 730", "retention_days = 0", 1)
            .replacen(
                "categories = [\"user.contact.email\"]",
                "categories = [\"user.contact.phone\"]",
                1,
            );
        let errors = DataMap::parse(&src).expect_err("three problems");
        let messages: Vec<&str> = errors.all().iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.all().len(), 3, "{errors}");
        assert!(messages[0].contains("retention_days"), "{errors}");
        assert!(messages[1].contains("user.contact.phone"), "{errors}");
        assert!(messages[2].contains("`dhl`"), "{errors}");
        let lines: Vec<usize> = errors.all().iter().map(|e| e.line).collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    }
}
