//! The cast and the catalogue: regions, teams, reps, products, accounts, and the weights of
//! sources, activities, loss reasons and stages.

pub(super) const REGIONS: [&str; 3] = ["East", "West", "Central"];

pub(super) struct Team {
    pub(super) id: &'static str,
    pub(super) region: usize,
}

pub(super) const TEAMS: [Team; 6] = [
    Team {
        id: "team-east-1",
        region: 0,
    },
    Team {
        id: "team-east-2",
        region: 0,
    },
    Team {
        id: "team-west-1",
        region: 1,
    },
    Team {
        id: "team-west-2",
        region: 1,
    },
    Team {
        id: "team-central-1",
        region: 2,
    },
    Team {
        id: "team-central-2",
        region: 2,
    },
];

pub(super) struct Rep {
    pub(super) id: &'static str,
    pub(super) team: usize,
    /// Relative share of its region's leads.
    pub(super) lead_weight: u32,
    /// Base chance, in thousandths, that an opportunity of this rep is won.
    pub(super) win_per_mille: i32,
}

pub(super) const fn rep(
    id: &'static str,
    team: usize,
    lead_weight: u32,
    win_per_mille: i32,
) -> Rep {
    Rep {
        id,
        team,
        lead_weight,
        win_per_mille,
    }
}

pub(super) const REPS: [Rep; 24] = [
    rep("rep-01", 0, 12, 560),
    rep("rep-02", 0, 10, 520),
    rep("rep-03", 0, 9, 610),
    rep("rep-04", 0, 11, 480),
    rep("rep-05", 1, 10, 420),
    rep("rep-06", 1, 13, 450),
    rep("rep-07", 1, 8, 390),
    rep("rep-08", 1, 10, 470),
    rep("rep-09", 2, 11, 500),
    rep("rep-10", 2, 10, 540),
    rep("rep-11", 2, 9, 460),
    rep("rep-12", 2, 12, 430),
    rep("rep-13", 3, 10, 330),
    rep("rep-14", 3, 14, 360),
    rep("rep-15", 3, 8, 400),
    rep("rep-16", 3, 10, 310),
    rep("rep-17", 4, 10, 450),
    rep("rep-18", 4, 11, 480),
    rep("rep-19", 4, 9, 510),
    rep("rep-20", 4, 10, 440),
    rep("rep-21", 5, 12, 380),
    rep("rep-22", 5, 9, 350),
    rep("rep-23", 5, 10, 420),
    rep("rep-24", 5, 8, 460),
];

pub(super) struct Product {
    pub(super) name: &'static str,
    pub(super) list_price: i64,
    /// Added to the rep's win chance, in thousandths.
    pub(super) win_adjust: i32,
    /// Relative popularity in the smb, mid_market and enterprise segments.
    pub(super) weights: [u32; 3],
    /// Quantity range per segment.
    pub(super) quantity: [(i64, i64); 3],
}

pub(super) const PRODUCTS: [Product; 7] = [
    Product {
        name: "GTX Basic",
        list_price: 550,
        win_adjust: 40,
        weights: [30, 15, 5],
        quantity: [(1, 3), (2, 10), (5, 25)],
    },
    Product {
        name: "GTX Pro",
        list_price: 4821,
        win_adjust: 0,
        weights: [10, 20, 20],
        quantity: [(1, 2), (1, 5), (2, 12)],
    },
    Product {
        name: "MG Special",
        list_price: 55,
        win_adjust: 70,
        weights: [30, 10, 2],
        quantity: [(2, 20), (10, 60), (20, 150)],
    },
    Product {
        name: "MG Advanced",
        list_price: 3393,
        win_adjust: -10,
        weights: [10, 20, 18],
        quantity: [(1, 2), (1, 6), (2, 12)],
    },
    Product {
        name: "GTX Plus Pro",
        list_price: 5482,
        win_adjust: -40,
        weights: [4, 15, 25],
        quantity: [(1, 2), (1, 4), (2, 10)],
    },
    Product {
        name: "GTX Plus Basic",
        list_price: 1096,
        win_adjust: 20,
        weights: [16, 15, 10],
        quantity: [(1, 3), (1, 8), (3, 20)],
    },
    Product {
        name: "GTK 500",
        list_price: 26768,
        win_adjust: -70,
        weights: [0, 5, 20],
        quantity: [(1, 1), (1, 2), (1, 4)],
    },
];

pub(super) const SEGMENTS: [&str; 3] = ["smb", "mid_market", "enterprise"];
/// Added to the win chance per segment, in thousandths.
pub(super) const SEGMENT_WIN_ADJUST: [i32; 3] = [30, 0, -50];

pub(super) const ACCOUNTS: usize = 300;

/// The region of account `i` (0-based).
pub(super) fn account_region(i: usize) -> usize {
    i % REGIONS.len()
}

/// The segment of account `i`: 60 % smb, 30 % mid_market, 10 % enterprise, spread over regions.
pub(super) fn account_segment(i: usize) -> usize {
    match (i * 7 + i / 3) % 10 {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    }
}

/// Lead sources with their share of leads and their conversion chance in thousandths.
pub(super) const SOURCES: [(&str, u32, u32); 4] = [
    ("web", 40, 350),
    ("referral", 20, 600),
    ("event", 15, 480),
    ("outbound", 25, 420),
];

pub(super) const ACTIVITIES: [(&str, u32); 4] =
    [("call", 35), ("email", 35), ("meeting", 15), ("demo", 15)];
pub(super) const LOSS_REASONS: [(&str, u32); 4] = [
    ("price", 30),
    ("competitor", 30),
    ("no_decision", 25),
    ("timing", 15),
];

pub(super) const STAGES: [&str; 4] = ["prospecting", "qualification", "proposal", "negotiation"];
pub(super) const PROPOSAL: u8 = 2;
pub(super) const NEGOTIATION: u8 = 3;
/// At which open stage lost opportunities are lost.
pub(super) const LOST_AT_WEIGHTS: [u32; 4] = [30, 30, 25, 15];
/// How many activities are logged in a stage: 0, 1, 2 or 3.
pub(super) const ACTIVITY_COUNT_WEIGHTS: [u32; 4] = [30, 40, 20, 10];
