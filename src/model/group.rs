//! Where a table whose group is unknown is looked for first.

/// The group a never-seen table name most likely lives in.
///
/// The 2.5 sketch checked "user" first and so looked for `user_movie_interactions` under
/// `user/`; the order here checks `interaction` first, then `user`, then `movie`/`content`,
/// and falls back to `misc`. It is only a first guess: every read resolves where the table
/// really is before using this.
pub fn infer_group(table: &str) -> &'static str {
    let lower = table.to_ascii_lowercase();
    if lower.contains("interaction") {
        "interaction"
    } else if lower.contains("user") {
        "user"
    } else if lower.contains("movie") || lower.contains("content") {
        "content"
    } else {
        "misc"
    }
}

#[cfg(test)]
mod tests {
    use super::infer_group;

    #[test]
    fn interaction_wins_over_user_and_movie() {
        assert_eq!(infer_group("user_movie_interactions"), "interaction");
        assert_eq!(infer_group("user_profile"), "user");
        assert_eq!(infer_group("movie_metadata"), "content");
        assert_eq!(infer_group("content_embeddings"), "content");
        assert_eq!(infer_group("weather"), "misc");
    }
}
