//! The console's static assets, embedded in `hb` and served at
//! `/assets/<name>.<contenthash>.<ext>` with a year-long immutable cache: a new build with a
//! changed file gets a new URL. The vendored files and their provenance are listed in
//! `server/web/assets/VENDORED.md`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    /// The file's name in `server/web/assets/`.
    name: &'static str,
    /// Its bytes.
    bytes: &'static [u8],
    /// Its media type.
    content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every asset the console serves.
const ASSETS: [Asset; 4] = [
    Asset {
        name: "htmx.min.js",
        bytes: include_bytes!("../../web/assets/htmx.min.js"),
        content_type: JS,
    },
    Asset {
        name: "htmx-ext-sse.min.js",
        bytes: include_bytes!("../../web/assets/htmx-ext-sse.min.js"),
        content_type: JS,
    },
    Asset {
        name: "pico.classless.min.css",
        bytes: include_bytes!("../../web/assets/pico.classless.min.css"),
        content_type: CSS,
    },
    Asset {
        name: "console.css",
        bytes: include_bytes!("../../web/assets/console.css"),
        content_type: CSS,
    },
];

/// The assets by their hashed file name, and each name's URL; hashed once, at first use.
struct Table {
    by_file: BTreeMap<String, &'static Asset>,
    urls: BTreeMap<&'static str, String>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut by_file = BTreeMap::new();
    let mut urls = BTreeMap::new();
    for asset in &ASSETS {
        let file = hashed_name(asset.name, asset.bytes);
        urls.insert(asset.name, format!("/assets/{file}"));
        by_file.insert(file, asset);
    }
    Table { by_file, urls }
});

/// `htmx.min.js` with content `bytes` → `htmx.min.<first 16 hex digits of blake3>.js`.
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes).to_hex();
    let short = &hash.as_str()[..16];
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{short}.{ext}"),
        None => format!("{name}.{short}"),
    }
}

/// The URL of the asset named `name` (as in `server/web/assets/`), `None` when there is no
/// such asset.
pub fn url(name: &str) -> Option<&'static str> {
    TABLE.urls.get(name).map(String::as_str)
}

/// `GET /assets/{file}`: an embedded asset, cached for a year (its URL changes with it).
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = TABLE.by_file.get(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_hashed_url() {
        for asset in &ASSETS {
            let url = url(asset.name).expect("every asset has a URL");
            let file = url.strip_prefix("/assets/").expect("under /assets/");
            assert!(TABLE.by_file.contains_key(file), "{url}");
            assert_ne!(file, asset.name, "the name carries the hash");
        }
        assert_eq!(
            hashed_name("htmx.min.js", b"x").split('.').count(),
            4,
            "stem, min, hash, ext"
        );
    }
}
