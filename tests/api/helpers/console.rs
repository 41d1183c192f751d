//! The owner console as a browser sees it: a server with the development login, pages read
//! completely, and a browser that keeps its cookies, follows no redirect and scrapes the CSRF
//! token from the page it posts a form from.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use super::{ADMIN, Spawn, TestServer};

/// A server with the admin API (to create skills and approve agents) and the development
/// login.
pub fn console_builder() -> Spawn {
    TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "true")
}

/// The e-mail address the development login records for `name`.
pub fn dev_email(name: &str) -> String {
    format!("{name}@dev.invalid")
}

/// One HTTP answer, read completely.
pub struct Page {
    /// Its status code.
    pub status: u16,
    /// Its `Location` header, if any.
    pub location: Option<String>,
    /// Every `Set-Cookie` header, as sent.
    pub set_cookies: Vec<String>,
    /// All its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: String,
}

impl Page {
    /// Reads `r` to the end.
    pub fn read(r: reqwest::blocking::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let location = headers
            .get(LOCATION)
            .map(|v| v.to_str().expect("ASCII Location").to_owned());
        let set_cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
            .collect();
        let body = r.text().expect("response body");
        Self {
            status,
            location,
            set_cookies,
            headers,
            body,
        }
    }

    /// Asserts the status, showing the page when it differs.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; Location {:?}; body:\n{}",
            self.location, self.body
        );
        self
    }

    /// Asserts a 303 to `to`.
    pub fn expect_see_other(self, to: &str) -> Self {
        let page = self.expect(303);
        assert_eq!(page.location.as_deref(), Some(to), "redirect target");
        page
    }

    /// The value of the hidden (or any) input `name`, if the page has one.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let len = self.body[start..].find('"')?;
        Some(self.body[start..start + len].to_owned())
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let token = self
            .input("csrf")
            .unwrap_or_else(|| panic!("no csrf field on the page:\n{}", self.body));
        assert!(!token.is_empty(), "empty csrf field:\n{}", self.body);
        token
    }

    /// The `patron_session` cookie this answer sets (with its attributes), if any.
    pub fn session_set_cookie(&self) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with("patron_session="))
            .map(String::as_str)
    }

    /// The value of header `name`, which must be present.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .expect("ASCII header")
            .to_owned()
    }

    /// Whether the body holds `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// The body with HTML character references decoded (named or numeric, as the template
    /// engine writes them), to find what a reader of the page sees.
    pub fn shown_text(&self) -> String {
        let mut out = String::with_capacity(self.body.len());
        let mut rest = self.body.as_str();
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let decoded = rest.find(';').and_then(|end| {
                let entity = &rest[1..end];
                let c = match entity {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => entity
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                c.map(|c| (c, end + 1))
            });
            match decoded {
                Some((c, len)) => {
                    out.push(c);
                    rest = &rest[len..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Asserts `text` is on the page, escaped: a reader sees it, the markup does not hold it.
    pub fn assert_shows_escaped(&self, text: &str) {
        assert!(
            !self.body.contains(text),
            "{text:?} is in the page raw:\n{}",
            self.body
        );
        assert!(
            self.shown_text().contains(text),
            "{text:?} is not shown:\n{}",
            self.body
        );
    }
}

/// The value of the `patron_session` cookie in a `Set-Cookie` header.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .strip_prefix("patron_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("patron_session=<value>")
        .to_owned()
}

/// A browser: a cookie jar (the session cookie and any other the server sets through
/// [`Browser::absorb`]), sent by hand; no redirect is followed.
pub struct Browser<'a> {
    /// The server it talks to.
    pub s: &'a TestServer,
    jar: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    /// A browser without cookies.
    pub fn anonymous(s: &'a TestServer) -> Self {
        Self { s, jar: Vec::new() }
    }

    /// Logs in with the development login as `dev:<name>` (recorded with the address
    /// [`dev_email`]`(name)`).
    pub fn dev_login(s: &'a TestServer, name: &str) -> Self {
        let mut b = Self::anonymous(s);
        let page = b
            .post(
                "/console/login/dev",
                &[("name", name), ("return_to", "/console")],
            )
            .expect_see_other("/console");
        assert!(page.session_set_cookie().is_some(), "a session cookie");
        b.absorb(&page);
        b
    }

    /// A browser holding only the session cookie `cookie`.
    pub fn with_cookie(s: &'a TestServer, cookie: &str) -> Self {
        Self {
            s,
            jar: vec![("patron_session".to_owned(), cookie.to_owned())],
        }
    }

    /// Keeps the cookies `page` sets (and drops those it removes).
    pub fn absorb(&mut self, page: &Page) {
        for set in &page.set_cookies {
            let (pair, attributes) = set.split_once(';').unwrap_or((set.as_str(), ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.jar.retain(|(n, _)| n != name.trim());
            if !value.is_empty() && !attributes.contains("Max-Age=0") {
                self.jar
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }

    /// The session cookie's value, if the browser holds one.
    pub fn session(&self) -> Option<&str> {
        self.jar
            .iter()
            .find(|(n, _)| n == "patron_session")
            .map(|(_, v)| v.as_str())
    }

    fn with_jar(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        if self.jar.is_empty() {
            return req;
        }
        let header = self
            .jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        req.header("Cookie", header)
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            self.s.url(path)
        }
    }

    /// `GET path` (or an absolute URL) with the browser's cookies.
    pub fn get(&self, path: &str) -> Page {
        let req = self.with_jar(self.s.http.get(self.absolute(path)));
        Page::read(req.send().expect("GET"))
    }

    /// POSTs a form on a connection of its own (`Connection: close`): the server may close a
    /// connection whose request body it did not read (see
    /// `a_console_post_without_a_session_leaves_the_connection_usable`), which must not make
    /// the next request of an unrelated test fail.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.with_jar(
            self.s
                .http
                .post(self.absolute(path))
                .header("Connection", "close")
                .form(form),
        );
        Page::read(req.send().expect("POST"))
    }

    /// The session's CSRF token, read from the dashboard.
    pub fn csrf(&self) -> String {
        self.get("/console").expect(200).csrf()
    }

    /// Submits a console form as a browser does: opens `page` (which must answer 200),
    /// takes the CSRF token from it and POSTs `fields` with it to `path`.
    pub fn submit_from(&self, page: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(page).expect(200).csrf();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(path, &form)
    }

    /// Approves the agent behind `code` with `grants` (audience, scopes) from the claim form.
    pub fn approve(&self, code: &str, grants: &[(&str, &str)]) -> Page {
        let scope_fields: Vec<(String, String)> = grants
            .iter()
            .map(|(aud, scopes)| (format!("scopes:{aud}"), (*scopes).to_owned()))
            .collect();
        let mut form = vec![("user_code", code), ("action", "approve")];
        for (aud, _) in grants {
            form.push(("grant", aud));
        }
        for (k, v) in &scope_fields {
            form.push((k.as_str(), v.as_str()));
        }
        self.submit_from("/console", "/claim", &form)
    }
}
