use super::*;
use proptest::prelude::*;

fn dec(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

fn metric_strategy() -> impl Strategy<Value = Metric> {
    prop::sample::select(Metric::ALL.to_vec())
}

fn delta_for(metric: Metric, seed: i64) -> Delta<'static> {
    match metric {
        Metric::Count => Delta::Count,
        Metric::Sum | Metric::Avg | Metric::Min | Metric::Max => Delta::Number(dec(seed)),
        Metric::CountDistinct => Delta::Text(Cow::Owned(format!("v{}", seed.rem_euclid(7)))),
        Metric::Ratio => Delta::Ratio {
            num: seed % 3 == 0,
            den: true,
        },
    }
}

fn fold(metric: Metric, seeds: &[i64]) -> Aggregate {
    let mut a = Aggregate::empty(metric);
    for s in seeds {
        a.apply(&delta_for(metric, *s));
    }
    a
}

proptest! {
    #[test]
    fn merge_is_associative(
        metric in metric_strategy(),
        a in prop::collection::vec(-1_000_000i64..1_000_000, 0..20),
        b in prop::collection::vec(-1_000_000i64..1_000_000, 0..20),
        c in prop::collection::vec(-1_000_000i64..1_000_000, 0..20),
    ) {
        let (pa, pb, pc) = (fold(metric, &a), fold(metric, &b), fold(metric, &c));
        let mut left = pa.clone();
        left.merge(&pb);
        left.merge(&pc);
        let mut bc = pb.clone();
        bc.merge(&pc);
        let mut right = pa.clone();
        right.merge(&bc);
        prop_assert_eq!(&left, &right);
        // merging partials equals folding everything in one go
        let all: Vec<i64> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(&left, &fold(metric, &all));
        // and the identity is neutral, on both sides
        let mut with_empty = Aggregate::empty(metric);
        with_empty.merge(&left);
        prop_assert_eq!(&with_empty, &left);
    }

    #[test]
    fn merge_is_commutative(
        metric in metric_strategy(),
        a in prop::collection::vec(-1_000_000i64..1_000_000, 0..20),
        b in prop::collection::vec(-1_000_000i64..1_000_000, 0..20),
    ) {
        let mut ab = fold(metric, &a);
        ab.merge(&fold(metric, &b));
        let mut ba = fold(metric, &b);
        ba.merge(&fold(metric, &a));
        prop_assert_eq!(ab.value(), ba.value());
    }
}

#[test]
fn values_are_exact() {
    let mut sum = Aggregate::empty(Metric::Sum);
    for _ in 0..10 {
        sum.apply(&Delta::Number(Decimal::new(1, 1)));
    }
    assert_eq!(
        sum.value(),
        Some(Decimal::ONE),
        "ten times 0.1 is exactly 1"
    );

    let mut avg = Aggregate::empty(Metric::Avg);
    assert_eq!(avg.value(), None);
    for v in [1, 2, 2] {
        avg.apply(&Delta::Number(Decimal::from(v)));
    }
    let third = avg.value().unwrap();
    assert!(third.to_string().starts_with("1.666666666666"), "{third}");

    let mut ratio = Aggregate::empty(Metric::Ratio);
    ratio.apply(&Delta::Ratio {
        num: true,
        den: false,
    });
    assert_eq!(ratio.value(), None, "no denominator yet");
    ratio.apply(&Delta::Ratio {
        num: false,
        den: true,
    });
    ratio.apply(&Delta::Ratio {
        num: true,
        den: true,
    });
    assert_eq!(ratio.value(), Some(Decimal::ONE));
    assert_eq!(ratio.denominator(), 2);

    let mut distinct = Aggregate::empty(Metric::CountDistinct);
    for v in ["a", "b", "a"] {
        distinct.apply(&Delta::Text(Cow::Borrowed(v)));
    }
    assert_eq!(distinct.value(), Some(Decimal::from(2)));

    let mut min = Aggregate::empty(Metric::Min);
    let mut max = Aggregate::empty(Metric::Max);
    for v in [5, -3, 9] {
        min.apply(&Delta::Number(Decimal::from(v)));
        max.apply(&Delta::Number(Decimal::from(v)));
    }
    assert_eq!(min.value(), Some(Decimal::from(-3)));
    assert_eq!(max.value(), Some(Decimal::from(9)));
}

#[test]
fn sums_saturate_instead_of_panicking() {
    let mut sum = Aggregate::Sum(Decimal::MAX);
    sum.apply(&Delta::Number(Decimal::ONE));
    assert_eq!(sum.value(), Some(Decimal::MAX));
}
