//! The provenance `deepsky simulate` writes into every file ([`deepsky_sim::files`] writes
//! the files): FITS cards or HDF5 attributes with the run's seed, command and settings.

use deepsky_io::fits::Card;
use deepsky_io::h5::AttrValue;
use deepsky_runtime::{Provenance, Resolved};
use serde::Serialize;

/// The provenance of one simulation, as it goes into each output file.
pub struct Record {
    provenance: Provenance,
    seed: u64,
    config_json: String,
}

impl Record {
    pub fn start<C: Serialize>(
        name: &str,
        cfg: &Resolved<C>,
        seed: u64,
        config_json: String,
    ) -> Self {
        let features = deepsky_nn::device::enabled_features();
        let version = env!("CARGO_PKG_VERSION");
        let mut provenance =
            Provenance::start(&format!("simulate {name}"), version, &features, cfg);
        provenance.seed("simulation", seed);
        Record {
            provenance,
            seed,
            config_json,
        }
    }

    fn creator() -> String {
        format!("deepsky {}", env!("CARGO_PKG_VERSION"))
    }

    /// FITS primary-header cards: CREATOR and SIMSEED, the pipelines' provenance cards, and
    /// HISTORY cards with the resolved settings as JSON.
    pub fn cards(&self) -> Vec<Card> {
        let mut cards = vec![
            Card::new("CREATOR", Record::creator(), "software that made this file"),
            Card::new("SIMSEED", self.seed as i64, "random seed of the simulation"),
        ];
        cards.extend(self.provenance.fits_cards());
        for chunk in wrap(&format!("config: {}", self.config_json), 70) {
            cards.push(Card::history(&chunk));
        }
        cards
    }

    /// HDF5 root attributes: `creator`, `seed`, `command`, `config` (the resolved settings as
    /// JSON), and the pipelines' provenance attributes.
    pub fn attrs(&self) -> Vec<(String, AttrValue)> {
        let command = self.provenance.command_line.join(" ");
        let mut attrs = vec![
            ("creator".into(), Record::creator().into()),
            ("seed".into(), AttrValue::Int(self.seed as i64)),
            ("command".into(), command.into()),
            ("config".into(), self.config_json.clone().into()),
        ];
        attrs.extend(self.provenance.hdf5_attrs());
        attrs
    }
}

/// `s` in pieces of at most `width` bytes (HISTORY card text).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    s.as_bytes()
        .chunks(width)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}
