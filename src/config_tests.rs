//! Tests of `config`: the flag parsers and defaults.

use super::*;

#[test]
fn sizes_read_with_binary_and_decimal_units() {
    assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
    assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
    assert_eq!(parse_size("2kb"), Ok(2_000));
    assert_eq!(parse_size("1048576"), Ok(1_048_576));
    assert!(parse_size("ten").is_err());
    assert!(parse_size("10 parsecs").is_err());
}

#[test]
fn first_response_targets_are_four_durations() {
    let targets = parse_targets("30m,2h,1d,2d").expect("targets");
    assert_eq!(targets.0[0], Duration::from_secs(1800));
    assert_eq!(targets.0[3], Duration::from_secs(2 * 86_400));
    assert!(parse_targets("1h,2h").is_err());
}

#[test]
fn resolution_targets_are_four_numbers_of_days() {
    assert_eq!(
        parse_days("1, 3,5,10"),
        Ok(ResolutionTargets([1, 3, 5, 10]))
    );
    for wrong in [
        "1,3,5",
        "1,3,5,10,20",
        "0,3,5,10",
        "1,3,5,366",
        "1,3,5,x",
        "-1,3,5,10",
    ] {
        assert!(parse_days(wrong).is_err(), "{wrong}");
    }
}

#[test]
fn the_default_policy_flags_are_the_domains_defaults() {
    let policy = PolicyArgs::default().case_policy();
    assert_eq!(
        policy,
        subdesk_aggregates::support_case::CasePolicy::default()
    );
}
