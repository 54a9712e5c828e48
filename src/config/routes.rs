//! `[[routes]]` and `[filters]`: which posts go where, which are muted, which are forwarded to
//! an owner. The raw serde structs, the validated public types, and the checks between them.
//! Kept apart from the other sections so the policy has one home; [`crate::routes`] applies it.

use lakitu_transport::{PeerAddr, Scheme};
use serde::Deserialize;

use super::ConfigError;
use super::build::{Ctx, node_id};
use super::locate::KeyPath;
use crate::id::PublicId;
use crate::post::Topic;

/// Most `[[routes]]` tables: every outgoing payload frame is checked against each.
pub(crate) const MAX_ROUTES: usize = 256;

/// One `[[routes]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRoute {
    /// Default: any topic.
    pub topics: Vec<String>,
    /// Default: any author.
    pub authors: Vec<String>,
    /// Default: absent, any peer.
    pub peers: Option<Vec<String>>,
    /// Default: none.
    pub except_peers: Vec<String>,
    /// Default: absent, any transport.
    pub transports: Option<Vec<String>>,
    /// Default: none.
    pub forward_to: Vec<String>,
}

/// `[filters]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawFilters {
    /// Default: nobody is muted.
    pub mute_authors: Vec<String>,
    /// Default: no topic is muted.
    pub mute_topics: Vec<String>,
}

/// One validated `[[routes]]` table. A route *matches* a post when the post carries one of
/// `topics` (or `topics` is empty) and is by one of `authors` (or `authors` is empty). Every
/// matching route applies: a post goes to a peer only if all of them allow it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteConfig {
    /// Match posts with any of these topics; empty matches every topic.
    pub topics: Vec<Topic>,
    /// Match posts by any of these authors; empty matches every author.
    pub authors: Vec<PublicId>,
    /// Send matching posts only to these peers; `None` allows every peer.
    pub peers: Option<Vec<PublicId>>,
    /// Never send matching posts to these peers.
    pub except_peers: Vec<PublicId>,
    /// Send matching posts only over these transports; `None` allows every transport.
    pub transports: Option<Vec<Scheme>>,
    /// Also send matching posts, as readable messages, to these gateway owners.
    pub forward_to: Vec<PeerAddr>,
}

/// Validated `[filters]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FiltersConfig {
    /// Posts by these authors are neither stored nor forwarded.
    pub mute_authors: Vec<PublicId>,
    /// Posts carrying any of these topics are neither stored nor forwarded.
    pub mute_topics: Vec<Topic>,
}

/// Check `[[routes]]`. `peers` resolves names (`peers = ["alice"]`) to ids; `owners` are the
/// only addresses posts may be forwarded to.
pub(crate) fn build_routes(
    raw: &[RawRoute],
    peers: &[super::PeerConfig],
    owners: &[PeerAddr],
    cx: &Ctx<'_>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    if raw.len() > MAX_ROUTES {
        return Err(cx.err(
            &KeyPath::keys("routes"),
            format!("at most {MAX_ROUTES} routes, found {}", raw.len()),
        ));
    }
    let mut routes = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let p = KeyPath::keys("routes").index(i);
        let topics = topics(&r.topics, &p.key("topics"), cx)?;
        let authors = ids(&r.authors, &p.key("authors"), cx)?;
        let resolve = |list: &[String], at: KeyPath| -> Result<Vec<PublicId>, ConfigError> {
            let mut out = Vec::with_capacity(list.len());
            for (j, s) in list.iter().enumerate() {
                let ep = at.index(j);
                // A configured peer's name, else a node id (peers learned by gossip count too).
                let id = match peers.iter().find(|pc| pc.name.as_deref() == Some(s.trim())) {
                    Some(pc) => pc.id,
                    None => node_id(s, &ep, cx).map_err(|_| {
                        cx.err(
                            &ep,
                            format!("{s:?} is neither the name of a [[peers]] entry nor a node id"),
                        )
                    })?,
                };
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            Ok(out)
        };
        let only = match &r.peers {
            Some(list) => Some(resolve(list, p.key("peers"))?),
            None => None,
        };
        let except_peers = resolve(&r.except_peers, p.key("except_peers"))?;
        let transports = match &r.transports {
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (j, s) in list.iter().enumerate() {
                    let scheme = scheme(s).ok_or_else(|| {
                        cx.err(
                            &p.key("transports").index(j),
                            format!("expected \"quic\", \"xmpp\" or \"email\", found {s:?}"),
                        )
                    })?;
                    if !out.contains(&scheme) {
                        out.push(scheme);
                    }
                }
                Some(out)
            }
            None => None,
        };
        let mut forward_to = Vec::with_capacity(r.forward_to.len());
        for (j, s) in r.forward_to.iter().enumerate() {
            let ap = p.key("forward_to").index(j);
            let addr: PeerAddr = s.parse().map_err(|e| cx.err(&ap, format!("{e}")))?;
            if !owners.contains(&addr) {
                return Err(cx.err(
                    &ap,
                    format!(
                        "{addr} is not in gateway.owners: posts are forwarded to the relay's \
                         owners only"
                    ),
                ));
            }
            if !forward_to.contains(&addr) {
                forward_to.push(addr);
            }
        }
        if only.is_none()
            && except_peers.is_empty()
            && transports.is_none()
            && forward_to.is_empty()
        {
            return Err(cx.err(
                &p,
                "the route does nothing: set peers, except_peers, transports or forward_to",
            ));
        }
        routes.push(RouteConfig {
            topics,
            authors,
            peers: only,
            except_peers,
            transports,
            forward_to,
        });
    }
    Ok(routes)
}

/// Check `[filters]`.
pub(crate) fn build_filters(raw: &RawFilters, cx: &Ctx<'_>) -> Result<FiltersConfig, ConfigError> {
    let p = KeyPath::keys("filters");
    Ok(FiltersConfig {
        mute_authors: ids(&raw.mute_authors, &p.key("mute_authors"), cx)?,
        mute_topics: topics(&raw.mute_topics, &p.key("mute_topics"), cx)?,
    })
}

fn topics(raw: &[String], at: &KeyPath, cx: &Ctx<'_>) -> Result<Vec<Topic>, ConfigError> {
    let mut out: Vec<Topic> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let topic = Topic::new(t).map_err(|e| cx.err(&at.index(i), e.to_string()))?;
        if !out.contains(&topic) {
            out.push(topic);
        }
    }
    Ok(out)
}

fn ids(raw: &[String], at: &KeyPath, cx: &Ctx<'_>) -> Result<Vec<PublicId>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let id = node_id(s, &at.index(i), cx)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A transport's name as users write it: the address scheme, or `email` for `mailto`.
fn scheme(s: &str) -> Option<Scheme> {
    match s.trim().to_ascii_lowercase().as_str() {
        "quic" => Some(Scheme::Quic),
        "xmpp" => Some(Scheme::Xmpp),
        "email" | "mailto" | "mail" => Some(Scheme::Mail),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};
    use crate::id::Identity;
    use lakitu_transport::Scheme;

    fn id(seed: u8) -> String {
        Identity::from_seed([seed; 32]).public().to_string()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/lakitu/config.toml"))
    }

    fn invalid(text: &str) -> (usize, String, String) {
        match parse(text) {
            Ok(_) => panic!("parsed, but should not:\n{text}"),
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn routes_resolve_peer_names_and_transport_names() {
        let text = format!(
            "[[peers]]\nid = \"{}\"\nname = \"carol\"\n\n[gateway]\nowners = [\"xmpp:me@example.org\"]\n\n\
             [[routes]]\ntopics = [\"#Private\"]\nexcept_peers = [\"carol\", \"{}\"]\n\n\
             [[routes]]\nauthors = [\"{}\"]\ntransports = [\"email\", \"quic\"]\nforward_to = [\"xmpp:me@example.org\"]\n",
            id(3),
            id(4),
            id(5)
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].topics[0].as_str(), "private");
        assert_eq!(
            c.routes[0].except_peers,
            [
                Identity::from_seed([3; 32]).public(),
                Identity::from_seed([4; 32]).public()
            ]
        );
        assert_eq!(c.routes[0].peers, None);
        assert_eq!(
            c.routes[1].transports,
            Some(vec![Scheme::Mail, Scheme::Quic])
        );
        assert_eq!(c.routes[1].forward_to[0].as_str(), "xmpp:me@example.org");
    }

    #[test]
    fn route_errors_name_the_line_and_key() {
        let (line, key, msg) =
            invalid("[[routes]]\npeers = []\n\n[[routes]]\nexcept_peers = [\"nobody\"]\n");
        assert_eq!((line, key.as_str()), (5, "routes[1].except_peers[0]"));
        assert!(msg.contains("neither the name"), "{msg}");

        let (line, key, msg) = invalid("[[routes]]\ntopics = [\"a\"]\ntransports = [\"pigeon\"]\n");
        assert_eq!((line, key.as_str()), (3, "routes[0].transports[0]"));
        assert!(msg.contains("\"quic\""), "{msg}");

        let (line, key, msg) =
            invalid("[[routes]]\ntopics = [\"a\"]\nforward_to = [\"xmpp:stranger@example.org\"]\n");
        assert_eq!((line, key.as_str()), (3, "routes[0].forward_to[0]"));
        assert!(msg.contains("gateway.owners"), "{msg}");

        let (_, key, msg) = invalid("[[routes]]\ntopics = [\"a\"]\n");
        assert_eq!(key, "routes[0]");
        assert!(msg.contains("does nothing"), "{msg}");

        let (line, key, _) = invalid("[[routes]]\ntopics = [\"a b\"]\npeers = []\n");
        assert_eq!((line, key.as_str()), (2, "routes[0].topics[0]"));

        let (line, key, _) = invalid("[[routes]]\nsomething = 1\n");
        assert_eq!((line, key.as_str()), (2, "routes[0].something"));
    }

    #[test]
    fn filters_parse_and_name_bad_entries() {
        let c = parse(&format!(
            "[filters]\nmute_authors = [\"{}\"]\nmute_topics = [\"#Spam\"]\n",
            id(9)
        ))
        .unwrap();
        assert_eq!(
            c.filters.mute_authors,
            [Identity::from_seed([9; 32]).public()]
        );
        assert_eq!(c.filters.mute_topics[0].as_str(), "spam");
        let (line, key, _) = invalid("[filters]\nmute_topics = []\nmute_authors = [\"zz\"]\n");
        assert_eq!((line, key.as_str()), (3, "filters.mute_authors[0]"));
    }

    #[test]
    fn no_routes_or_filters_by_default() {
        let c = parse("").unwrap();
        assert!(c.routes.is_empty());
        assert_eq!(c.filters, Default::default());
    }
}
