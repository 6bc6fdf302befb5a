//! Validation of a generate request body, as strict as the real service: every refusal names
//! the field at fault. Unknown args are accepted and ignored.

use serde_json::{Map, Value};

/// The fields of a valid submission the simulator keeps.
#[derive(Debug)]
pub(crate) struct Submission {
    pub(crate) reference_video_url: String,
    pub(crate) model: i64,
}

/// Parses and checks a `POST /api/v1/video2video/generate` body.
pub(crate) fn submission(body: &[u8]) -> Result<Submission, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| "request body must be a JSON object".to_owned())?;
    let Value::Object(body) = value else {
        return Err("request body must be a JSON object".to_owned());
    };
    match body.get("type") {
        None | Some(Value::Null) => return Err("type is required".to_owned()),
        Some(Value::String(t)) if t == "mx-v2v" => {}
        Some(_) => return Err("type must be \"mx-v2v\"".to_owned()),
    }
    let args = match body.get("args") {
        None | Some(Value::Null) => return Err("args is required".to_owned()),
        Some(Value::Object(args)) => args,
        Some(_) => return Err("args must be an object".to_owned()),
    };
    let reference_video_url = match given(args, "reference_video_url") {
        None => return Err("reference_video_url is required".to_owned()),
        Some(Value::String(url)) if url.is_empty() => {
            return Err("reference_video_url is required".to_owned());
        }
        Some(Value::String(url)) if is_http_url(url) => url.clone(),
        Some(_) => return Err("reference_video_url must be an http(s) URL".to_owned()),
    };
    let model = match given(args, "model") {
        None => return Err("model is required".to_owned()),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| "model must be an integer".to_owned())?,
    };
    if let Some(v) = given(args, "duration") {
        match v.as_i64() {
            Some(3..=30) => {}
            _ => return Err("duration must be an integer between 3 and 30".to_owned()),
        }
    }
    if let Some(v) = given(args, "resolution") {
        match v.as_str() {
            Some("540p" | "720p") => {}
            _ => return Err("resolution must be \"540p\" or \"720p\"".to_owned()),
        }
    }
    if let Some(v) = given(args, "seed")
        && v.as_i64().is_none()
    {
        return Err("seed must be an integer".to_owned());
    }
    if let Some(v) = given(args, "prompt") {
        match v.as_str() {
            Some(p) if p.chars().count() <= 500 => {}
            Some(_) => return Err("prompt must be at most 500 characters".to_owned()),
            None => return Err("prompt must be a string".to_owned()),
        }
    }
    Ok(Submission {
        reference_video_url,
        model,
    })
}

/// The arg when present and not null.
fn given<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    args.get(name).filter(|v| !v.is_null())
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<Submission, String> {
        submission(body.to_string().as_bytes())
    }

    fn args(extra: Value) -> Value {
        let mut args = json!({"reference_video_url": "https://cdn.example/a.mp4", "model": 2000});
        if let (Some(a), Value::Object(e)) = (args.as_object_mut(), extra) {
            a.extend(e);
        }
        json!({"type": "mx-v2v", "args": args})
    }

    #[test]
    fn accepts_a_full_request_with_unknown_args() {
        let ok = check(args(
            json!({"duration": 5, "resolution": "720p", "seed": -1,
            "prompt": "anime", "future_knob": [1, 2]}),
        ))
        .unwrap();
        assert_eq!(ok.reference_video_url, "https://cdn.example/a.mp4");
        assert_eq!(ok.model, 2000);
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            (json!({"type": "other", "args": {}}), "type"),
            (json!({"type": "mx-v2v"}), "args"),
            (
                json!({"type": "mx-v2v", "args": {"model": 1}}),
                "reference_video_url",
            ),
            (
                json!({"type": "mx-v2v", "args": {"model": 1, "reference_video_url": "ftp://x/a"}}),
                "reference_video_url",
            ),
            (
                json!({"type": "mx-v2v", "args": {"reference_video_url": "https://x/a"}}),
                "model",
            ),
            (args(json!({"model": "2000"})), "model"),
            (args(json!({"duration": 2})), "duration"),
            (args(json!({"duration": 31})), "duration"),
            (args(json!({"resolution": "1080p"})), "resolution"),
            (args(json!({"seed": 1.5})), "seed"),
            (args(json!({"prompt": "x".repeat(501)})), "prompt"),
        ];
        for (body, field) in cases {
            let err = check(body.clone()).unwrap_err();
            assert!(err.contains(field), "{body}: {err}");
        }
        assert!(submission(b"not json").is_err());
    }
}
