//! What an encoder reads: a leaf module (the error type and the bundle
//! manifest both name modalities).

/// What an encoder reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Natural-language text.
    Text,
    /// A picture.
    Image,
    /// A molecule as SMILES.
    Molecule,
}

impl Modality {
    /// All modalities, in manifest order.
    pub const ALL: [Modality; 3] = [Modality::Text, Modality::Image, Modality::Molecule];

    /// The manifest table name.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Molecule => "molecule",
        }
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
