//! Who may do what (PlanetLab's rules), as pure functions over the facts a decision needs.
//!
//! - admins do everything;
//! - a PI manages its sites' persons and slices (and, like a tech, its sites' nodes);
//! - a tech manages its sites' nodes;
//! - a user sees public data and uses the slices it belongs to (renew, nodes, non-resource tags);
//! - a node sees only its own desired slivers and reports only about itself.

use thiserror::Error;

use crate::image::Visibility;
use crate::objects::Role;
use crate::tags::TagName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Person {
        id: i64,
        email: String,
        roles: Vec<Role>,
        site_ids: Vec<i64>,
    },
    Node {
        id: i64,
        hostname: String,
    },
    Anonymous,
}

/// A refused action and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct Denied {
    pub message: String,
    /// The actor is anonymous, so logging in could change the answer (HTTP says 401, not 403).
    pub login_required: bool,
}

impl Denied {
    /// Refused to who the actor is.
    pub fn new(message: impl Into<String>) -> Self {
        Denied {
            message: message.into(),
            login_required: false,
        }
    }

    /// Refused because nobody is logged in.
    pub fn login_required(message: impl Into<String>) -> Self {
        Denied {
            message: message.into(),
            login_required: true,
        }
    }
}

pub type Allowed = Result<(), Denied>;

fn deny(msg: impl Into<String>) -> Allowed {
    Err(Denied::new(msg))
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        matches!(self, Actor::Person { roles, .. } if roles.contains(&Role::Admin))
    }

    pub fn person_id(&self) -> Option<i64> {
        match self {
            Actor::Person { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Whether this person holds `role` at `site`.
    pub fn has_role_at(&self, role: Role, site: i64) -> bool {
        matches!(self, Actor::Person { roles, site_ids, .. } if roles.contains(&role) && site_ids.contains(&site))
    }

    pub fn is_pi_of(&self, site: i64) -> bool {
        self.has_role_at(Role::Pi, site)
    }

    /// How the actor appears in the event log.
    pub fn label(&self) -> String {
        match self {
            Actor::Person { email, .. } => format!("person:{email}"),
            Actor::Node { hostname, .. } => format!("node:{hostname}"),
            Actor::Anonymous => "anonymous".into(),
        }
    }

    fn require_person(&self) -> Allowed {
        match self {
            Actor::Person { .. } => Ok(()),
            Actor::Node { .. } => deny("nodes may only read their own slivers and send reports"),
            Actor::Anonymous => Err(Denied::login_required("log in first")),
        }
    }

    pub fn require_admin(&self, what: &str) -> Allowed {
        self.require_person()?;
        if self.is_admin() {
            Ok(())
        } else {
            deny(format!("only admins may {what}"))
        }
    }

    /// Reading the registry's public data (sites, nodes, slices) needs a login, not a role.
    pub fn can_read_public(&self) -> Allowed {
        self.require_person()
    }

    pub fn can_update_site(&self, site: i64, admin_fields: bool) -> Allowed {
        self.require_person()?;
        if self.is_admin() {
            return Ok(());
        }
        if admin_fields {
            return deny("only admins may change a site's max_slices, image_quota_mb or enabled");
        }
        if self.is_pi_of(site) {
            Ok(())
        } else {
            deny("only admins and the site's PIs may change a site")
        }
    }

    /// Creating a person with `roles` at `sites`, or granting them to an existing one.
    pub fn can_grant(&self, roles: &[Role], sites: &[i64]) -> Allowed {
        self.require_person()?;
        if self.is_admin() {
            return Ok(());
        }
        if roles.contains(&Role::Admin) {
            return deny("only admins may grant the admin role");
        }
        if sites.is_empty() {
            return deny("a PI may only add persons to its own sites; name one");
        }
        if let Some(s) = sites.iter().find(|s| !self.is_pi_of(**s)) {
            return deny(format!("you are not a PI of site {s}"));
        }
        Ok(())
    }

    /// Managing another person's account (name, enabled). `target_sites` are theirs.
    pub fn can_manage_person(
        &self,
        target: i64,
        target_sites: &[i64],
        target_is_admin: bool,
    ) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.person_id() == Some(target) {
            return Ok(());
        }
        if target_is_admin {
            return deny("only admins may change an admin");
        }
        if target_sites.iter().any(|s| self.is_pi_of(*s)) {
            Ok(())
        } else {
            deny("only admins, the person and its sites' PIs may change a person")
        }
    }

    /// Seeing a person's details (email, roles, keys): admins, the person, and persons sharing a site.
    pub fn can_see_person(&self, target: i64, target_sites: &[i64]) -> Allowed {
        match self {
            Actor::Person { site_ids, .. } => {
                if self.is_admin()
                    || self.person_id() == Some(target)
                    || target_sites.iter().any(|s| site_ids.contains(s))
                {
                    Ok(())
                } else {
                    deny("persons of other sites are not visible to you")
                }
            }
            _ => self.require_person(),
        }
    }

    /// Keys are a person's own (or an admin's business).
    pub fn can_manage_keys(&self, owner: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.person_id() == Some(owner) {
            Ok(())
        } else {
            deny("only the person itself and admins may change its keys")
        }
    }

    pub fn can_manage_node(&self, site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.has_role_at(Role::Tech, site) || self.is_pi_of(site) {
            Ok(())
        } else {
            deny("only admins and the site's techs and PIs may manage its nodes")
        }
    }

    pub fn can_create_slice(&self, site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.is_pi_of(site) {
            Ok(())
        } else {
            deny("only admins and the site's PIs may create or delete its slices")
        }
    }

    /// Changing a slice's description, persons and resource tags; deleting it.
    pub fn can_admin_slice(&self, slice_site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.is_pi_of(slice_site) {
            Ok(())
        } else {
            deny("only admins and the slice's site PIs may do that")
        }
    }

    /// Renewing a slice, choosing its nodes, setting its non-resource tags: also its members.
    pub fn can_use_slice(&self, slice_site: i64, is_member: bool) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.is_pi_of(slice_site) || is_member {
            Ok(())
        } else {
            deny("only the slice's persons, its site's PIs and admins may do that")
        }
    }

    /// Capturing a sliver's packets on a node: the slice's persons, the PIs and techs of the
    /// site that hosts the node (their machine), and admins. Not the slice's own site PIs: the
    /// packets may be other people's traffic with the slice.
    pub fn can_capture(&self, is_member: bool, node_site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin()
            || is_member
            || self.is_pi_of(node_site)
            || self.has_role_at(Role::Tech, node_site)
        {
            Ok(())
        } else {
            deny("only the slice's persons, the PIs and techs of the node's site and admins may capture a sliver's packets")
        }
    }

    pub fn can_set_tag(&self, tag: TagName, slice_site: i64, is_member: bool) -> Allowed {
        if tag.is_resource() {
            self.can_admin_slice(slice_site).map_err(|d| {
                if d.login_required {
                    return d;
                }
                Denied::new(format!(
                    "{tag} grants resources: only the slice's site PIs and admins may set it"
                ))
            })
        } else {
            self.can_use_slice(slice_site, is_member)
        }
    }

    /// Whether this person belongs to `site` (any role).
    pub fn belongs_to(&self, site: i64) -> bool {
        matches!(self, Actor::Person { site_ids, .. } if site_ids.contains(&site))
    }

    /// Publishing an image: `platform` images by admins; `site` images by the site's persons
    /// (admins: for any site).
    pub fn can_publish_image(&self, visibility: Visibility, site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() {
            return Ok(());
        }
        match visibility {
            Visibility::Platform => deny("only admins may publish platform images"),
            Visibility::Site if self.belongs_to(site) => Ok(()),
            Visibility::Site => deny(format!(
                "you may only publish images for your own sites, not site {site}"
            )),
        }
    }

    /// Seeing and using an image: `platform` images and the images of one's sites (admins: all).
    pub fn can_see_image(&self, visibility: Visibility, site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || visibility == Visibility::Platform || self.belongs_to(site) {
            Ok(())
        } else {
            deny("the image belongs to another site")
        }
    }

    /// Deleting an image: the person who published it, a PI of its site, or an admin.
    pub fn can_delete_image(&self, owner: Option<i64>, site: i64) -> Allowed {
        self.require_person()?;
        if self.is_admin() || self.is_pi_of(site) || (owner.is_some() && self.person_id() == owner)
        {
            Ok(())
        } else {
            deny("only the image's publisher, its site's PIs and admins may delete it")
        }
    }

    /// The node-facing endpoints.
    pub fn as_node(&self) -> Result<i64, Denied> {
        match self {
            Actor::Node { id, .. } => Ok(*id),
            Actor::Anonymous => Err(Denied::login_required(
                "this endpoint is for node managers: send the node key as Bearer token",
            )),
            Actor::Person { .. } => {
                Err(Denied::new("this endpoint is for node managers (node key)"))
            }
        }
    }
}

/// Checks a requested expiry against PlanetLab's bounds: in the future, at most 8 weeks ahead.
pub fn check_renewal(now: i64, requested: i64) -> Result<i64, crate::ValidationError> {
    use crate::time::SLICE_MAX_AHEAD;
    if requested <= now {
        return Err(crate::ValidationError::new(
            "expires",
            "must be in the future",
        ));
    }
    if requested > now + SLICE_MAX_AHEAD {
        return Err(crate::ValidationError::new(
            "expires",
            format!(
                "at most {} days ahead (requested {} days)",
                SLICE_MAX_AHEAD / crate::time::DAY,
                (requested - now) / crate::time::DAY
            ),
        ));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY, WEEK};

    fn person(id: i64, roles: &[Role], sites: &[i64]) -> Actor {
        Actor::Person {
            id,
            email: format!("p{id}@x"),
            roles: roles.to_vec(),
            site_ids: sites.to_vec(),
        }
    }

    #[test]
    fn admins_do_everything() {
        let a = person(1, &[Role::Admin], &[]);
        assert!(a.require_admin("x").is_ok());
        assert!(a.can_create_slice(9).is_ok());
        assert!(a.can_manage_node(9).is_ok());
        assert!(a.can_grant(&[Role::Admin], &[]).is_ok());
        assert!(a.can_set_tag(TagName::MemMax, 9, false).is_ok());
    }

    #[test]
    fn pi_manages_own_site_only() {
        let pi = person(2, &[Role::Pi], &[1]);
        assert!(pi.can_create_slice(1).is_ok());
        assert!(pi.can_create_slice(2).is_err());
        assert!(pi.can_grant(&[Role::User], &[1]).is_ok());
        assert!(pi.can_grant(&[Role::User], &[2]).is_err());
        assert!(pi.can_grant(&[Role::Admin], &[1]).is_err());
        assert!(pi.can_grant(&[Role::User], &[]).is_err());
        assert!(pi.can_manage_node(1).is_ok());
        assert!(pi.can_update_site(1, false).is_ok());
        assert!(pi.can_update_site(1, true).is_err());
        assert!(pi.can_manage_person(5, &[1], false).is_ok());
        assert!(pi.can_manage_person(5, &[1], true).is_err());
        assert!(pi.can_manage_person(5, &[2], false).is_err());
    }

    #[test]
    fn tech_manages_nodes_not_slices() {
        let tech = person(3, &[Role::Tech], &[1]);
        assert!(tech.can_manage_node(1).is_ok());
        assert!(tech.can_manage_node(2).is_err());
        assert!(tech.can_create_slice(1).is_err());
    }

    #[test]
    fn users_use_their_slices() {
        let u = person(4, &[Role::User], &[1]);
        assert!(u.can_use_slice(1, true).is_ok());
        assert!(u.can_use_slice(1, false).is_err());
        assert!(u.can_use_slice(2, false).is_err());
        assert!(u.can_admin_slice(1).is_err());
        assert!(u.can_set_tag(TagName::Initscript, 1, true).is_ok());
        let e = u.can_set_tag(TagName::MemMax, 1, true).unwrap_err();
        assert!(e.message.contains("grants resources"));
        assert!(u.can_manage_keys(4).is_ok());
        assert!(u.can_manage_keys(5).is_err());
        assert!(u.can_see_person(5, &[1]).is_ok());
        assert!(u.can_see_person(5, &[2]).is_err());
    }

    #[test]
    fn nodes_and_anonymous() {
        let n = Actor::Node {
            id: 7,
            hostname: "n".into(),
        };
        assert_eq!(n.as_node(), Ok(7));
        assert!(n.can_read_public().is_err());
        assert!(n.can_create_slice(1).is_err());
        assert!(!n.can_read_public().unwrap_err().login_required);
        let admin = person(1, &[Role::Admin], &[]);
        assert!(!admin.as_node().unwrap_err().login_required);
        // Only a refusal to nobody-logged-in asks for a login (401); the others are 403.
        let anon = Actor::Anonymous;
        assert!(anon.can_read_public().unwrap_err().login_required);
        assert!(anon.as_node().unwrap_err().login_required);
        assert!(anon.require_admin("x").unwrap_err().login_required);
        assert!(
            anon.can_set_tag(TagName::MemMax, 1, false)
                .unwrap_err()
                .login_required
        );
        let u = person(4, &[Role::User], &[1]);
        assert!(
            !u.can_set_tag(TagName::MemMax, 1, true)
                .unwrap_err()
                .login_required
        );
    }

    #[test]
    fn images_by_visibility_site_and_publisher() {
        let admin = person(1, &[Role::Admin], &[]);
        let pi = person(2, &[Role::Pi], &[1]);
        let u = person(4, &[Role::User], &[1]);
        let other = person(5, &[Role::User], &[2]);
        assert!(admin.can_publish_image(Visibility::Platform, 9).is_ok());
        assert!(admin.can_publish_image(Visibility::Site, 9).is_ok());
        assert!(u.can_publish_image(Visibility::Site, 1).is_ok());
        assert!(u.can_publish_image(Visibility::Site, 2).is_err());
        assert!(pi.can_publish_image(Visibility::Platform, 1).is_err());
        assert!(other.can_see_image(Visibility::Platform, 1).is_ok());
        assert!(other.can_see_image(Visibility::Site, 1).is_err());
        assert!(u.can_see_image(Visibility::Site, 1).is_ok());
        assert!(admin.can_see_image(Visibility::Site, 9).is_ok());
        assert!(u.can_delete_image(Some(4), 1).is_ok());
        assert!(u.can_delete_image(Some(6), 1).is_err());
        assert!(u.can_delete_image(None, 1).is_err());
        assert!(pi.can_delete_image(Some(6), 1).is_ok());
        assert!(pi.can_delete_image(Some(6), 2).is_err());
        assert!(admin.can_delete_image(None, 9).is_ok());
        let anon = Actor::Anonymous;
        assert!(
            anon.can_see_image(Visibility::Platform, 1)
                .unwrap_err()
                .login_required
        );
        let n = Actor::Node {
            id: 7,
            hostname: "n".into(),
        };
        assert!(n.can_publish_image(Visibility::Site, 1).is_err());
    }

    #[test]
    fn renewal_bounds() {
        let now = 1_000_000;
        assert!(check_renewal(now, now + 4 * WEEK).is_ok());
        assert!(check_renewal(now, now + 8 * WEEK).is_ok());
        assert!(check_renewal(now, now + 8 * WEEK + 1).is_err());
        assert!(check_renewal(now, now - DAY).is_err());
        assert!(check_renewal(now, now).is_err());
    }
}
