//! Turning request data into bounded, low-cardinality label values.
//!
//! Route templates are rewritten from each framework's own syntax into one `{param}` form, raw
//! paths of apps without a router have their ids collapsed, and the Host header and method are
//! reduced to a small set of plausible values. Every function here takes arbitrary text from a
//! client, so none of them may panic, and each returns its input borrowed when it is already in
//! normal form so the hot path does not allocate.

//
//! One concern per file: [`route`] (framework route syntaxes), [`path`] (raw paths), [`host`],
//! [`method`]; [`rewriter`] is their shared copy-on-write helper.

mod rewriter;

pub mod host;
pub mod method;
pub mod path;
pub mod route;

pub use host::normalize_host;
pub use method::{method_index, normalize_method, METHODS};
pub use path::normalize_path;
pub use route::{route_template, RouteSyntax};

#[cfg(test)]
mod tests {
    use super::path::{MAX_SEGMENTS, MAX_SEGMENT_LEN};
    use super::*;
    use std::borrow::Cow;
    use std::collections::HashSet;

    fn route(raw: &str, syntax: RouteSyntax) -> String {
        route_template(raw, syntax).into_owned()
    }

    /// A small deterministic generator, so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn string(&mut self, alphabet: &[char], len: usize) -> String {
            (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
        }
    }

    const HOSTILE_ALPHABET: &[char] = &[
        '/', '/', 'a', 'Z', '0', '9', '<', '>', '{', '}', '(', ')', '[', ']', '\\', ':', '?', '*', '+', '^',
        '$', '#', '|', '.', '-', '_', '@', '=', 'P', '\u{0}', '\u{7f}', '\u{85}', 'é', '☃', '🦀', ' ', '\n',
        '%',
    ];

    fn hostile_inputs() -> Vec<String> {
        let mut inputs: Vec<String> = [
            "",
            "/",
            "<",
            ">",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "\\",
            ":",
            "*",
            "?",
            "(?",
            "(?P",
            "(?P<",
            "(?P<a",
            "(?P<a>",
            "(?#",
            "[^",
            "[]",
            "<:",
            "<a:",
            "<a:b:",
            "<a:b:\\",
            "{:}",
            "{{}}",
            "\u{0}\u{7f}é",
            "/\u{0}/\u{7f}/é",
            "\\é",
            "(?P<é>x)",
            "<é>",
            "{é}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for piece in [
            "<", "(", "{", "[", "\\", ")", "}", "/", "(?:", "(?P<x>", ":a", "<a(", "<>", "()",
        ] {
            inputs.push(piece.repeat(10_000 / piece.len()));
        }
        inputs.push("/".repeat(10_000));
        inputs.push(format!("{}>", "<".repeat(10_000)));
        inputs.push(format!("/{}", "é".repeat(5_000)));
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..1000 {
            let len = rng.below(40);
            inputs.push(rng.string(HOSTILE_ALPHABET, len));
        }
        inputs
    }

    // route_template: Angle (Flask/Werkzeug, Django path())

    #[test]
    fn angle_parameters_become_braces() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/name/<name>", a), "/name/{name}");
        assert_eq!(route("/name/<int:name>", a), "/name/{name}");
        assert_eq!(route("/item/<int:id>", a), "/item/{id}");
        assert_eq!(route("/files/<path:rest>", a), "/files/{rest}");
        assert_eq!(route("/<lang>/<slug:slug>/", a), "/{lang}/{slug}/");
        assert_eq!(
            route("articles/<int:year>/<int:month>/", a),
            "articles/{year}/{month}/"
        );
    }

    #[test]
    fn angle_converter_arguments_are_skipped() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/p/<any(about, help):page>", a), "/p/{page}");
        assert_eq!(route("/n/<int(min=1, max=9):n>", a), "/n/{n}");
        assert_eq!(route(r#"/c/<regex("[a-z]{3}>"):code>/x"#, a), "/c/{code}/x");
    }

    #[test]
    fn angle_unchanged_template_is_borrowed() {
        let result = route_template("/static/about", RouteSyntax::Angle);
        assert!(matches!(result, Cow::Borrowed(_)));
        let result = route_template("/u/{id}", RouteSyntax::Angle);
        assert!(matches!(result, Cow::Borrowed(_)));
    }

    #[test]
    fn angle_malformed_parts_stay_literal() {
        let a = RouteSyntax::Angle;
        assert_eq!(route("/a/<id", a), "/a/<id");
        assert_eq!(route("/a/<>", a), "/a/<>");
        assert_eq!(route("/a/<1x>", a), "/a/<1x>");
        assert_eq!(route("/a<b/<id>", a), "/a<b/{id}");
        assert_eq!(route("/a/<int:>", a), "/a/<int:>");
        assert_eq!(route("/a/<f(x:id>", a), "/a/<f(x:id>");
    }

    // route_template: AngleNameFirst (Bottle)

    #[test]
    fn bottle_name_comes_first() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/x/<id:int>", b), "/x/{id}");
        assert_eq!(route("/hello/<name>", b), "/hello/{name}");
        assert_eq!(route("/static/<filepath:path>", b), "/static/{filepath}");
        assert_eq!(route("/r/<code:re:[a-z]{3}>/x", b), "/r/{code}/x");
        assert_eq!(route(r"/r/<code:re:a\>b>/x", b), "/r/{code}/x");
        assert_eq!(route("/r/<v:float:>", b), "/r/{v}");
    }

    #[test]
    fn bottle_legacy_colon_names() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/object/:id", b), "/object/{id}");
        assert_eq!(route("/object/:id/edit", b), "/object/{id}/edit");
        assert_eq!(route("/object/:id#[0-9]+#/edit", b), "/object/{id}/edit");
        assert_eq!(route("/time/12:30", b), "/time/12:30");
    }

    #[test]
    fn bottle_anonymous_wildcards_are_numbered() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route("/a/<>/b/<:re:[0-9]+>", b), "/a/{arg0}/b/{arg1}");
    }

    #[test]
    fn bottle_escapes_are_literal() {
        let b = RouteSyntax::AngleNameFirst;
        assert_eq!(route(r"/a\:b/\<c>", b), "/a:b/<c>");
        assert_eq!(route(r"/a\b", b), r"/a\b");
    }

    #[test]
    fn bottle_unchanged_and_malformed() {
        let b = RouteSyntax::AngleNameFirst;
        assert!(matches!(route_template("/plain/path", b), Cow::Borrowed(_)));
        assert!(matches!(route_template("/u/{id}", b), Cow::Borrowed(_)));
        assert_eq!(route("/a/<id", b), "/a/<id");
        assert_eq!(route("/a/<id:re:[0-9]", b), "/a/<id:re:[0-9]");
    }

    // route_template: Brace (Starlette, FastAPI, Falcon, Pyramid)

    #[test]
    fn brace_converters_are_dropped() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/u/{id:int}", br), "/u/{id}");
        assert_eq!(route("/files/{path:path}", br), "/files/{path}");
        assert_eq!(route("/n/{n:int(min=1)}", br), "/n/{n}");
        assert_eq!(route(r"/y/{year:\d{4}}/{slug}", br), "/y/{year}/{slug}");
        assert_eq!(route("/f/{name}.{ext}", br), "/f/{name}.{ext}");
    }

    #[test]
    fn brace_already_normal_is_borrowed() {
        let result = route_template("/users/{user_id}/items/{item_id}", RouteSyntax::Brace);
        assert_eq!(result, "/users/{user_id}/items/{item_id}");
        assert!(matches!(result, Cow::Borrowed(_)));
        assert!(matches!(
            route_template("/", RouteSyntax::Brace),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn pyramid_star_matches_the_rest() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/static/*subpath", br), "/static/{subpath}");
        assert_eq!(route("/{a}/*rest", br), "/{a}/{rest}");
        assert_eq!(route("/static/*", br), "/static/*");
        assert_eq!(route("/a*b/c", br), "/a*b/c");
    }

    #[test]
    fn pyramid_relative_patterns_get_a_leading_slash() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("api/items/{id:\\d+}", br), "/api/items/{id}");
        assert_eq!(route("static/*subpath", br), "/static/{subpath}");
        assert_eq!(route("", br), "/");
        assert_eq!(route("{a}", br), "/{a}");
    }

    #[test]
    fn brace_malformed_parts_stay_literal() {
        let br = RouteSyntax::Brace;
        assert_eq!(route("/u/{id", br), "/u/{id");
        assert_eq!(route("/u/{id:int}/{x", br), "/u/{id}/{x");
        assert_eq!(route("/u/{}", br), "/u/{}");
        assert_eq!(route("/u/{1}", br), "/u/{1}");
    }

    // route_template: Regex (Tornado, Django re_path())

    #[test]
    fn regex_groups_become_params() {
        let r = RouteSyntax::Regex;
        assert_eq!(
            route(r"^/user/(?P<uid>[0-9]+)/posts/([a-z]+)/?$", r),
            "/user/{uid}/posts/{arg0}/"
        );
        assert_eq!(route(r"/static/(.*)", r), "/static/{arg0}");
        assert_eq!(route(r"/(\w+)/(\d+)/(\d+)", r), "/{arg0}/{arg1}/{arg2}");
        assert_eq!(
            route(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[\w-]+)/$", r),
            "articles/{year}/{slug}/"
        );
    }

    #[test]
    fn regex_anchors_and_escapes() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"\A/a\.b\/c\-d\Z", r), "/a.b/c-d");
        assert_eq!(route(r"^/feed\.xml$", r), "/feed.xml");
        assert_eq!(route(r"^/x\b/y\z", r), "/x/y");
        assert_eq!(route(r"^/num/\d+$", r), r"/num/\d+");
    }

    #[test]
    fn regex_non_capturing_groups_keep_their_content() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/(?:api)/v1$", r), "/api/v1");
        assert_eq!(route(r"^/list(?:/page)?/?$", r), "/list/page/");
        assert_eq!(route(r"^/a(?:/(?P<id>\d+))?$", r), "/a/{id}");
        assert_eq!(route(r"^/(?i:Hello)$", r), "/Hello");
    }

    #[test]
    fn regex_nested_captures_count_once() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/(?P<a>(x|y)+)/(z)$", r), "/{a}/{arg0}");
        assert_eq!(route(r"^/((a)(b))/(c)$", r), "/{arg0}/{arg1}");
    }

    #[test]
    fn regex_quantifiers_after_groups_are_dropped() {
        let r = RouteSyntax::Regex;
        assert_eq!(
            route(r"^/(\d+)?/(x)*/(y){2,3}/(z)+?$", r),
            "/{arg0}/{arg1}/{arg2}/{arg3}"
        );
    }

    #[test]
    fn regex_lookarounds_flags_and_comments_vanish() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"(?i)^/a(?=b)(?!c)(?<=a)(?<!z)/b$", r), "/a/b");
        assert_eq!(route(r"^/a(?#a comment (with parens)/b$", r), "/a/b");
        assert_eq!(route(r"^/a(?#comment)/b$", r), "/a/b");
        assert_eq!(route(r"^/(?P<x>a)/(?P=x)$", r), "/{x}/");
    }

    #[test]
    fn regex_escapes_and_classes_do_not_open_groups() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/a\(b\)/([)(])$", r), "/a(b)/{arg0}");
        assert_eq!(route(r"^/[(]x[]]/$", r), "/[(]x[]]/");
        assert_eq!(route(r"^/([^]/]+)$", r), "/{arg0}");
    }

    #[test]
    fn regex_unclosed_parts_stay_literal() {
        let r = RouteSyntax::Regex;
        assert_eq!(route(r"^/a/(\d+", r), r"/a/(\d+");
        assert_eq!(route(r"^/a/(?:x(\d+)", r), r"/a/(?:x(\d+)");
        assert_eq!(route(r"^/a/[0-9", r), "/a/[0-9");
        assert_eq!(route(r"^/a)b$", r), "/a)b");
        assert_eq!(route(r"/a\", r), r"/a\");
    }

    #[test]
    fn regex_plain_text_is_borrowed() {
        let result = route_template("/plain/path", RouteSyntax::Regex);
        assert!(matches!(result, Cow::Borrowed(_)));
    }

    // route_template: Django (path() and re_path(), joined by include())

    #[test]
    fn django_path_routes_get_braces_and_a_leading_slash() {
        let d = RouteSyntax::Django;
        assert_eq!(route("", d), "/");
        assert_eq!(route("about/", d), "/about/");
        assert_eq!(route("name/<name>/", d), "/name/{name}/");
        assert_eq!(
            route("api/v1/users/<uuid:user_id>/orders/<int:order_id>/", d),
            "/api/v1/users/{user_id}/orders/{order_id}/"
        );
        assert_eq!(route("files/<path:subpath>", d), "/files/{subpath}");
        assert_eq!(route("<yyyy:year>/report.v2+final", d), "/{year}/report.v2+final");
        assert_eq!(route("/already/rooted/<slug:s>", d), "/already/rooted/{s}");
    }

    #[test]
    fn django_re_path_routes_are_regexes() {
        let d = RouteSyntax::Django;
        assert_eq!(
            route(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[-\w]+)/$", d),
            "/articles/{year}/{slug}/"
        );
        assert_eq!(route(r"^$", d), "/");
        assert_eq!(route(r"^legacy/(\d+)/(\d+)/$", d), "/legacy/{arg0}/{arg1}/");
        assert_eq!(route(r"^feed\.xml$", d), "/feed.xml");
    }

    #[test]
    fn django_includes_mix_both_syntaxes() {
        let d = RouteSyntax::Django;
        // path() prefix, re_path() leaf: Django drops the leaf's `^` when it joins them.
        assert_eq!(
            route(r"api/v1/archive/(?P<year>[0-9]{4})/(\d+)/$", d),
            "/api/v1/archive/{year}/{arg0}/"
        );
        // re_path() prefix, path() leaf.
        assert_eq!(
            route(r"^shop/(?P<version>v[12])/items/<int:pk>/", d),
            "/shop/{version}/items/{pk}/"
        );
        assert_eq!(route(r"^tag/<(?P<name>\w+)>/$", d), "/tag/<{name}>/");
    }

    #[test]
    fn route_template_survives_hostile_input() {
        let syntaxes = [
            RouteSyntax::Angle,
            RouteSyntax::AngleNameFirst,
            RouteSyntax::Brace,
            RouteSyntax::Regex,
            RouteSyntax::Django,
        ];
        for input in hostile_inputs() {
            for syntax in syntaxes {
                let out = route_template(&input, syntax);
                // At worst `()` becomes `{arg12}`: the output stays proportional to the input.
                assert!(
                    out.len() <= 5 * input.len() + 16,
                    "{syntax:?} {input:?} → {out:?}"
                );
            }
        }
    }

    // normalize_path

    #[test]
    fn numeric_segments_become_id() {
        assert_eq!(normalize_path("/user/123"), "/user/{id}");
        assert_eq!(normalize_path("/user/456"), "/user/{id}");
        assert_eq!(normalize_path("/t/-5/3.14/+7/-0.5"), "/t/{id}/{id}/{id}/{id}");
        assert_eq!(normalize_path("/v/1.2.3"), "/v/1.2.3");
        assert_eq!(normalize_path("/v/-/+/."), "/v/-/+/.");
    }

    #[test]
    fn uuids_in_any_case_become_uuid() {
        assert_eq!(
            normalize_path("/o/123e4567-e89b-12d3-a456-426614174000"),
            "/o/{uuid}"
        );
        assert_eq!(
            normalize_path("/o/123E4567-E89B-12D3-A456-426614174000/x"),
            "/o/{uuid}/x"
        );
        assert_eq!(
            normalize_path("/o/{123e4567-e89b-12d3-a456-426614174000}"),
            "/o/{uuid}"
        );
        // Dashes in the wrong places: a long token-like segment instead.
        assert_eq!(
            normalize_path("/o/123e4567e-89b-12d3-a456-426614174000"),
            "/o/{token}"
        );
    }

    #[test]
    fn iso_dates_become_date() {
        assert_eq!(normalize_path("/d/2024-01-02"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-01-02T10:20:30Z"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-12-31T10:20:30.123+05:30"), "/d/{date}");
        assert_eq!(normalize_path("/d/2024-13-02"), "/d/2024-13-02");
        assert_eq!(normalize_path("/d/2024-01-02Tea"), "/d/2024-01-02Tea");
    }

    #[test]
    fn hex_ids_become_hex() {
        assert_eq!(normalize_path("/c/5f2b9c1e"), "/c/{hex}");
        assert_eq!(normalize_path("/c/d41d8cd98f00b204e9800998ecf8427e"), "/c/{hex}");
        assert_eq!(normalize_path("/c/abcdefabcdefabcd"), "/c/{hex}");
        // Hex-looking words stay.
        assert_eq!(normalize_path("/c/deadbeef/facade/add"), "/c/deadbeef/facade/add");
        assert_eq!(normalize_path("/c/abc1234"), "/c/abc1234");
    }

    #[test]
    fn tokens_become_token() {
        assert_eq!(normalize_path("/t/dGhpcyBpcyBhIHRva2VuMTIz"), "/t/{token}");
        assert_eq!(normalize_path("/t/aB3_-xY9zQ12wE45rT67yU"), "/t/{token}");
        assert_eq!(
            normalize_path("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123XYZ"),
            "/t/{token}"
        );
        // Long slugs of plain words stay.
        assert_eq!(
            normalize_path("/blog/a-long-article-slug-about-rust"),
            "/blog/a-long-article-slug-about-rust"
        );
    }

    #[test]
    fn long_segments_become_token() {
        let long_word = "x".repeat(65);
        assert_eq!(normalize_path(&format!("/x/{long_word}/y")), "/x/{token}/y");
        let max_word = "x".repeat(64);
        let path = format!("/x/{max_word}");
        assert_eq!(normalize_path(&path), path);
    }

    #[test]
    fn segments_with_at_become_id() {
        assert_eq!(normalize_path("/u/someone@example.com/p"), "/u/{id}/p");
        assert_eq!(normalize_path("/@handle"), "/{id}");
    }

    #[test]
    fn words_are_kept_and_borrowed() {
        for path in [
            "/",
            "/users",
            "/api/v2/users/",
            "/static/favicon.ico",
            "//a//b/",
            "/user/{id}",
        ] {
            let result = normalize_path(path);
            assert_eq!(result, path);
            assert!(matches!(result, Cow::Borrowed(_)), "{path}");
        }
    }

    #[test]
    fn empty_segments_and_trailing_slash_are_kept() {
        assert_eq!(normalize_path("//123//"), "//{id}//");
        assert_eq!(normalize_path("/a/123/"), "/a/{id}/");
    }

    #[test]
    fn result_always_starts_with_slash() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("*"), "/*");
        assert_eq!(normalize_path("a/123"), "/a/{id}");
        assert_eq!(normalize_path("123"), "/{id}");
    }

    #[test]
    fn query_and_fragment_are_dropped_without_copying() {
        let result = normalize_path("/search?q=123");
        assert_eq!(result, "/search");
        assert!(matches!(result, Cow::Borrowed(_)));
        assert_eq!(normalize_path("/a/1#top"), "/a/{id}");
        assert_eq!(normalize_path("?x"), "/");
    }

    #[test]
    fn deep_paths_end_in_rest() {
        let sixteen: String = (0..16).map(|i| format!("/s{i}")).collect();
        assert_eq!(normalize_path(&sixteen), sixteen);
        assert_eq!(normalize_path(&format!("{sixteen}/")), format!("{sixteen}/"));
        assert_eq!(
            normalize_path(&format!("{sixteen}/s16/s17")),
            format!("{sixteen}/{{rest}}")
        );
        assert_eq!(
            normalize_path(&format!("{sixteen}/s16/")),
            format!("{sixteen}/{{rest}}")
        );
    }

    #[test]
    fn control_characters_become_underscores() {
        assert_eq!(normalize_path("/a\u{0}b/\u{7f}/é\n"), "/a_b/_/é_");
        assert_eq!(normalize_path("\u{0}\u{7f}é"), "/__é");
    }

    #[test]
    fn ten_thousand_slashes_are_bounded() {
        let path = "/".repeat(10_000);
        assert_eq!(normalize_path(&path), format!("{}/{{rest}}", "/".repeat(16)));
    }

    #[test]
    fn ten_kilobyte_paths_are_bounded() {
        let one_segment = format!("/{}", "x".repeat(10_000));
        assert_eq!(normalize_path(&one_segment), "/{token}");
        let many_words = "/word".repeat(2_000);
        assert_eq!(
            normalize_path(&many_words),
            format!("{}/{{rest}}", "/word".repeat(16))
        );
    }

    #[test]
    fn normalize_path_is_idempotent_and_bounded_on_hostile_input() {
        for input in hostile_inputs() {
            let once = normalize_path(&input);
            assert!(once.starts_with('/'), "{input:?} → {once:?}");
            assert!(
                once.len() <= MAX_SEGMENTS * (MAX_SEGMENT_LEN + 1) + 8,
                "{input:?}"
            );
            assert!(!once.chars().any(char::is_control), "{input:?} → {once:?}");
            let twice = normalize_path(&once);
            assert_eq!(twice, once, "{input:?}");
            assert!(matches!(twice, Cow::Borrowed(_)), "{input:?}");
        }
    }

    #[test]
    fn paths_differing_only_in_ids_give_few_values() {
        let mut rng = XorShift(88_172_645_463_325_252);
        let hex: Vec<char> = "0123456789abcdef".chars().collect();
        let base64: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .collect();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let n = rng.next() % 1_000_000_000;
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                rng.string(&hex, 8),
                rng.string(&hex, 4),
                rng.string(&hex, 4),
                rng.string(&hex, 4),
                rng.string(&hex, 12)
            );
            let date = format!(
                "{}-{:02}-{:02}",
                1970 + rng.below(100),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            // A digit and a letter up front, so the token rule always applies.
            let token = format!("a1{}", rng.string(&base64, 30));
            let sha = rng.string(&hex, 40);
            let path = match rng.below(6) {
                0 => format!("/users/{n}"),
                1 => format!("/users/{n}/orders/{uuid}"),
                2 => format!("/api/v2/reports/{date}/{n}.{}", rng.below(100)),
                3 => format!("/commits/{sha}/"),
                4 => format!("/reset/{token}"),
                _ => format!("/u/user{n}@example.com/profile"),
            };
            seen.insert(normalize_path(&path).into_owned());
        }
        let mut seen: Vec<_> = seen.into_iter().collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "/api/v2/reports/{date}/{id}",
                "/commits/{hex}/",
                "/reset/{token}",
                "/u/{id}/profile",
                "/users/{id}",
                "/users/{id}/orders/{uuid}",
            ]
        );
    }

    // normalize_host

    #[test]
    fn host_is_lower_cased_without_port() {
        assert_eq!(normalize_host("Example.COM:8080").unwrap(), "example.com");
        assert_eq!(normalize_host("example.com.").unwrap(), "example.com");
        assert_eq!(normalize_host("  api.example.com  ").unwrap(), "api.example.com");
        assert_eq!(normalize_host("my_host-1").unwrap(), "my_host-1");
        assert_eq!(normalize_host("127.0.0.1:8000").unwrap(), "127.0.0.1");
        assert_eq!(normalize_host("example.com:").unwrap(), "example.com");
    }

    #[test]
    fn ipv6_hosts_keep_brackets() {
        assert_eq!(normalize_host("[::1]:8000").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]:").unwrap(), "[::1]");
        assert_eq!(normalize_host("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(normalize_host("[::ffff:1.2.3.4]:1").unwrap(), "[::ffff:1.2.3.4]");
    }

    #[test]
    fn normal_hosts_are_borrowed() {
        assert!(matches!(normalize_host("example.com"), Some(Cow::Borrowed(_))));
        assert!(matches!(normalize_host("example.com:80"), Some(Cow::Borrowed(_))));
        assert!(matches!(normalize_host("Example.com"), Some(Cow::Owned(_))));
    }

    #[test]
    fn implausible_hosts_are_rejected() {
        let too_long = format!("{}.com", "a".repeat(250));
        for host in [
            "",
            "   ",
            ".",
            "-",
            ":8080",
            "example.com:http",
            "example.com:80:90",
            "exa mple.com",
            "exa/mple.com",
            "évil.com",
            "a\u{0}b",
            "::1",
            "[::1",
            "[::g]",
            "[]",
            "[::1]x",
            "[::1]:port",
            "[fe80::1%eth0]",
            too_long.as_str(),
        ] {
            assert_eq!(normalize_host(host), None, "{host:?}");
        }
    }

    #[test]
    fn normalize_host_survives_hostile_input() {
        for input in hostile_inputs() {
            if let Some(host) = normalize_host(&input) {
                assert!(host.len() <= 253);
                assert!(host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-[]:".contains(&b)));
            }
        }
    }

    // normalize_method

    #[test]
    fn standard_methods_are_kept() {
        for method in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(normalize_method(method), method);
        }
    }

    #[test]
    fn other_methods_are_other() {
        for method in ["get", "Get", "PROPFIND", "", " GET", "GET ", "G\u{0}ET", "🦀"] {
            assert_eq!(normalize_method(method), "_OTHER", "{method:?}");
        }
    }
}
