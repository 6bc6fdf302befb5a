//! A request is validated when it is built; every refusal names its field.

use serde_json::{Value, json};
use vidq_core::{Resolution, TransformRequest, TransformRequestInput, ValidationError};

fn base() -> Value {
    json!({"reference_video_url": "https://videos.example/in.mp4", "model": 2000})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = base();
    body[field] = value;
    body
}

fn without(field: &str) -> Value {
    let mut body = base();
    body.as_object_mut().unwrap().remove(field);
    body
}

fn refusal(body: Value) -> ValidationError {
    let text = serde_json::to_vec(&body).unwrap();
    TransformRequest::from_json(&text).expect_err(&format!("{body} should be refused"))
}

#[test]
fn each_bad_field_is_named_in_the_error() {
    let metadata_33: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (without("reference_video_url"), "reference_video_url"),
        (
            with("reference_video_url", json!("http://videos.example/in.mp4")),
            "reference_video_url",
        ),
        (
            with("reference_video_url", json!("videos/in.mp4")),
            "reference_video_url",
        ),
        (
            with("reference_video_url", json!(42)),
            "reference_video_url",
        ),
        (without("model"), "model"),
        (with("model", json!(0)), "model"),
        (with("model", json!(-3)), "model"),
        (with("model", json!("2000")), "model"),
        (with("model", json!(1.5)), "model"),
        (with("duration", json!(2)), "duration"),
        (with("duration", json!(31)), "duration"),
        (with("duration", json!("5")), "duration"),
        (with("seed", json!(-2)), "seed"),
        (with("resolution", json!("1080p")), "resolution"),
        (with("prompt", json!("x".repeat(501))), "prompt"),
        (with("prompt", json!(7)), "prompt"),
        (with("extra", json!([1, 2])), "extra"),
        (
            with("extra", json!({"model": 3, "style_strength": 0.5})),
            "extra.model",
        ),
        (
            with("callback_url", json!("ftp://hooks.example/x")),
            "callback_url",
        ),
        (with("callback_url", json!("not a url")), "callback_url"),
        (with("metadata", Value::Object(metadata_33)), "metadata"),
        (with("metadata", json!({"k".repeat(65): "v"})), "metadata"),
        (
            with("metadata", json!({"team": "v".repeat(513)})),
            "metadata.team",
        ),
        (with("metadata", json!({"team": 5})), "metadata.team"),
        (with("reuse", json!("yes")), "reuse"),
        (with("colour", json!("red")), "colour"),
        (json!([1, 2, 3]), "request"),
    ];
    for (body, field) in cases {
        let error = refusal(body.clone());
        assert_eq!(error.field, field, "{body} gave {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("invalid request: {field}: ")),
            "{error}"
        );
    }
}

#[test]
fn error_reads_like_the_contract() {
    let error = refusal(with("model", json!(0)));
    assert_eq!(
        error.to_string(),
        "invalid request: model: must be a positive integer"
    );
    let error = TransformRequest::from_json(b"{not json").unwrap_err();
    assert_eq!(error.field, "request");
}

#[test]
fn defaults_fill_what_is_left_out() {
    let request = TransformRequest::new("https://videos.example/in.mp4", 2000).unwrap();
    assert_eq!(request.duration(), 5);
    assert_eq!(request.seed(), -1);
    assert_eq!(request.resolution(), Resolution::P720);
    assert!(request.reuse());
    assert_eq!(request.prompt(), None);
    assert!(request.callback_url().is_none());
    assert!(request.extra().is_empty() && request.metadata().is_empty());
}

#[test]
fn limits_are_inclusive() {
    let mut body = base();
    body["duration"] = json!(30);
    body["seed"] = json!(-1);
    body["prompt"] = json!("é".repeat(500));
    body["metadata"] = Value::Object(
        (0..32)
            .map(|i| (format!("{i:0>64}"), json!("v".repeat(512))))
            .collect(),
    );
    body["callback_url"] = json!("http://hooks.internal:8080/done");
    let request: TransformRequest = serde_json::from_value(body).unwrap();
    assert_eq!(request.duration(), 30);
    assert_eq!(request.prompt().map(|p| p.chars().count()), Some(500));
    assert_eq!(request.metadata().len(), 32);
    assert!(
        TransformRequest::from_json(&serde_json::to_vec(&with("duration", json!(3))).unwrap())
            .is_ok()
    );
}

#[test]
fn typed_input_is_validated_the_same_way() {
    let error = TransformRequest::try_from(TransformRequestInput {
        reference_video_url: Some("https://videos.example/in.mp4".into()),
        ..TransformRequestInput::default()
    })
    .unwrap_err();
    assert_eq!(error.field, "model");
}

#[test]
fn serde_validates_and_round_trips() {
    let error =
        serde_json::from_value::<TransformRequest>(with("duration", json!(99))).unwrap_err();
    assert!(error.to_string().contains("duration"), "{error}");

    let full = json!({
        "reference_video_url": "https://videos.example/in.mp4?v=2",
        "model": 2000, "duration": 10, "seed": 42, "resolution": "540p",
        "prompt": "make it noir", "extra": {"style_strength": 0.7, "nested": {"b": 1, "a": [1, 2]}},
        "callback_url": "https://hooks.example/done", "metadata": {"team": "video"}, "reuse": false
    });
    let request: TransformRequest = serde_json::from_value(full).unwrap();
    let again: TransformRequest =
        serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
    assert_eq!(again, request);
}

#[test]
fn canonical_args_are_stable_and_cover_exactly_the_upstream_args() {
    let a: TransformRequest = serde_json::from_str(
        r#"{"model": 2000, "reference_video_url": "https://videos.example/in.mp4",
            "extra": {"zeta": 1, "alpha": {"y": 2, "x": 1}}, "prompt": "noir",
            "metadata": {"team": "a"}, "reuse": false}"#,
    )
    .unwrap();
    let b: TransformRequest = serde_json::from_str(
        r#"{"prompt": "noir", "extra": {"alpha": {"x": 1, "y": 2}, "zeta": 1},
            "reference_video_url": "https://videos.example/in.mp4", "model": 2000,
            "callback_url": "https://hooks.example/x"}"#,
    )
    .unwrap();
    assert_eq!(
        a.canonical_upstream_args(),
        r#"{"alpha":{"x":1,"y":2},"duration":5,"model":2000,"prompt":"noir","reference_video_url":"https://videos.example/in.mp4","resolution":"720p","seed":-1,"zeta":1}"#
    );
    assert_eq!(a.canonical_upstream_args(), b.canonical_upstream_args());
    assert_eq!(a.upstream_args_sha256(), b.upstream_args_sha256());
    assert_eq!(a.upstream_args_sha256().len(), 64);

    let mut other_seed = serde_json::to_value(&a).unwrap();
    other_seed["seed"] = json!(7);
    let c: TransformRequest = serde_json::from_value(other_seed).unwrap();
    assert_ne!(a.upstream_args_sha256(), c.upstream_args_sha256());
}
