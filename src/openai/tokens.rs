//! Token estimates for `tokensPerMinute`, made before a request is sent: the prompt counted with
//! the model's own tokenizer (tiktoken-rs, with the chat framing of OpenAI's cookbook), plus the
//! completion's cap (`max_completion_tokens`, else `max_tokens`) times `n`. The response's
//! `usage` then replaces the estimate. Only computed when a token budget is set: the tokenizer's
//! tables cost memory and a moment to load.

use serde_json::Value;
use tiktoken_rs::{bpe_for_model, num_tokens_from_messages, o200k_base_singleton};
use tiktoken_rs::{ChatCompletionRequestMessage, CoreBPE};

/// The estimate for a request to `path` with JSON `body`.
pub fn estimate(path: &str, body: &Value) -> u64 {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-4o");
    let prompt = match path.trim_start_matches('/') {
        "chat/completions" => chat_prompt(model, body),
        "embeddings" => text_tokens(model, body.get("input")),
        "completions" => text_tokens(model, body.get("prompt")),
        _ => 0,
    };
    let cap = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let choices = body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    prompt + cap * choices
}

/// The model's tokenizer; models tiktoken does not know get the newest one.
fn tokenizer(model: &str) -> &'static CoreBPE {
    bpe_for_model(model).unwrap_or_else(|_| o200k_base_singleton())
}

fn chat_prompt(model: &str, body: &Value) -> u64 {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    let converted: Vec<ChatCompletionRequestMessage> = messages
        .iter()
        .map(|m| ChatCompletionRequestMessage {
            role: m
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .into(),
            content: Some(content_text(m.get("content"))),
            name: m.get("name").and_then(Value::as_str).map(str::to_string),
            ..Default::default()
        })
        .collect();
    match num_tokens_from_messages(model, &converted) {
        Ok(n) => n as u64,
        // A model tiktoken has no chat framing for: the texts alone, with the newest tokenizer.
        Err(_) => converted
            .iter()
            .map(|m| count(o200k_base_singleton(), m.content.as_deref().unwrap_or("")))
            .sum(),
    }
}

/// A message's text: a string, or the text parts of a content array.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Tokens in an `input`/`prompt`: a string, strings, or token arrays (counted as they are).
fn text_tokens(model: &str, input: Option<&Value>) -> u64 {
    match input {
        Some(Value::String(text)) => count(tokenizer(model), text),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => count(tokenizer(model), text),
                Value::Array(tokens) => tokens.len() as u64,
                Value::Number(_) => 1,
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

fn count(bpe: &CoreBPE, text: &str) -> u64 {
    bpe.encode_with_special_tokens(text).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chat_prompt_counts_as_the_cookbook_counts_it() {
        // "Hello, world!" is 4 tokens in o200k_base; 3 per message and 3 for the reply priming.
        let body =
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}]});
        assert_eq!(estimate("chat/completions", &body), 4 + 3 + 1 + 3);
        let capped = json!({"model": "gpt-4o", "max_tokens": 50, "n": 2,
            "messages": [{"role": "user", "content": "Hello, world!"}]});
        assert_eq!(estimate("chat/completions", &capped), 11 + 100);
    }

    #[test]
    fn embeddings_count_every_input() {
        let body =
            json!({"model": "text-embedding-3-small", "input": ["Hello, world!", [1, 2, 3]]});
        assert_eq!(estimate("embeddings", &body), 4 + 3);
        assert_eq!(estimate("models", &json!({})), 0);
    }
}
