//! IKEv1 beside AuthIP ([MS-AIPS] §3.2.4, §3.3.5.2). As initiator, a rule with `keying = "authip"` sends AuthIP
//! #1 and, when its method has an IKEv1 form (certificates), an IKEv1 MM1 carrying MS-MamieExists; whichever the
//! peer answers goes on and the other is dropped without a word, and the log says which and why; once an IKEv1
//! Main Mode SA is up with the peer, later Quick Modes of the rule go under it. As responder,
//! an IKEv1 MM1 with MS-MamieExists from a peer whose rule uses AuthIP is discarded (its AuthIP #1 is answered
//! instead); IKEv1 without MS-MamieExists (strongSwan, libreswan) is always answered.

use super::Endpoint;
use crate::authip::{self, Race};
use crate::ike::selector::main_mode_rule;
use crate::ike::{RequestId, Selector};
use crate::policy::{Authentication, Rule};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Endpoint {
    /// Gets a Quick Mode for `selector` going under an AuthIP rule: a new Quick Mode under an established AuthIP
    /// Main Mode SA with the peer, or a new AuthIP Main Mode (with its IKEv1 twin for certificate rules).
    pub(super) fn carry_authip(
        &mut self,
        now: Instant,
        rule: &Rule,
        local: SocketAddr,
        peer: SocketAddr,
        request: RequestId,
        selector: Selector,
    ) {
        if let Some(id) = self.authip.established(&rule.name, peer.ip()) {
            self.authip.start_quick_mode(now, &mut *self.rng, id, selector, vec![request]);
            return;
        }
        let authip_cky =
            match self.authip.initiate(now, &mut *self.rng, rule, local, peer, selector, vec![request], None) {
                Ok(c) => Some(c),
                Err(why) => {
                    warn!(peer = %peer, rule = %rule.name, "AuthIP Main Mode could not start: {why}");
                    None
                }
            };
        let twin = matches!(rule.authentication, Authentication::Certificate | Authentication::CertificateThenPsk);
        let ikev1_cky = if twin {
            self.start_main_mode_with(
                now,
                rule,
                local,
                peer,
                vec![(request, selector)],
                false,
                false,
                authip_cky.is_some(),
            )
        } else {
            None
        };
        match (authip_cky, ikev1_cky) {
            (Some(a), Some(i)) => {
                self.authip.set_twin(a, i);
                if let Some(sa) = self.by_cookie.get(&i).copied().and_then(|id| self.sas.get_mut(&id)) {
                    sa.core.authip_twin = Some(a);
                }
                info!(peer = %peer, rule = %rule.name, "sent AuthIP #1 and IKEv1 MM1 (with MS-MamieExists) side by side: the exchange the peer answers is used");
            }
            (Some(_), None) => {
                debug!(peer = %peer, rule = %rule.name, "AuthIP only: {} has no IKEv1 form", rule.authentication.name())
            }
            (None, Some(_)) => {
                info!(peer = %peer, rule = %rule.name, "negotiating IKEv1 only (AuthIP could not start)")
            }
            (None, None) => {
                if !twin {
                    self.events.push_back(crate::ike::Event::NegotiationFailed {
                        request: Some(request),
                        rule: Some(rule.name.clone()),
                        peer,
                        phase: "main mode",
                        reason: "AuthIP could not start (see the log)".into(),
                    });
                }
            }
        }
    }

    /// Applies the AuthIP engine's race outcomes: the peer answered AuthIP, so the IKEv1 twin goes.
    pub(super) fn settle_races(&mut self, now: Instant) {
        while let Some(r) = self.authip.poll_race() {
            match r {
                Race::FallBackToPsk { rule, local, peer, requests, reason } => {
                    let Some(r) = self.policy.rule(&rule).cloned() else { continue };
                    info!(peer = %peer, rule = %rule, "AuthIP with the certificate did not succeed ({reason}): falling back to IKEv1 with the pre-shared key");
                    self.start_main_mode_with(now, &r, local, peer, requests, false, true, false);
                }
                Race::AuthipWon { ikev1_cookie } => {
                    if let Some(id) = self.by_cookie.get(&ikev1_cookie).copied() {
                        if let Some(sa) = self.forget_sa(id) {
                            debug!(peer = %sa.core.peer, "dropped the IKEv1 Main Mode sent beside AuthIP #1: the peer answered AuthIP");
                        }
                    }
                }
            }
        }
    }

    /// Whether an IKEv1 MM1 is to be discarded because its sender also sent AuthIP and our rule for it uses
    /// AuthIP ([MS-AIPS] §3.3.5.2); counts and logs it.
    pub(super) fn discard_for_authip(&mut self, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) -> bool {
        if !authip::classify::ikev1_has_mamie_exists(datagram) {
            return false;
        }
        let rule = main_mode_rule(&self.policy, local.ip(), remote.ip()).and_then(|i| self.policy.rules.get(i));
        let Some(rule) = rule.filter(|r| authip::rule_method(r).is_some()) else {
            return false;
        };
        self.stats.ikev1_discarded_for_authip += 1;
        debug!(peer = %remote, rule = %rule.name, "discarded an IKEv1 MM1 with MS-MamieExists: rule '{}' uses AuthIP, which the peer sent beside it ([MS-AIPS] §3.3.5.2)", rule.name);
        true
    }

    /// The peer answered our IKEv1 MM1: the AuthIP #1 sent beside it is abandoned.
    pub(super) fn ikev1_won(&mut self, authip_cookie: [u8; 8], peer: SocketAddr, rule: &str) {
        if self.authip.abandon(authip_cookie) {
            info!(peer = %peer, rule = %rule, "the peer answered IKEv1 and not AuthIP: IKEv1 is used (the peer has no AuthIP, or prefers IKEv1)");
        }
    }

    /// Whether an IKEv1 Main Mode SA of `rule` with `peer` is established (the peer answered the IKEv1 MM1 sent
    /// beside AuthIP #1, or negotiated plain IKEv1 with us): the rule's next Quick Modes (a rekey, other traffic) go
    /// under it as under a `keying = "ike"` rule, rather than each starting a new AuthIP #1 and Main Mode twin.
    /// Its renewal is a plain IKEv1 Main Mode too.
    pub(super) fn ikev1_up(&self, rule: &Rule, peer: SocketAddr) -> bool {
        self.sas.iter().any(|(id, sa)| {
            !sa.core.test
                && !self.retiring(*id)
                && sa.core.rule == rule.name
                && sa.core.peer.ip() == peer.ip()
                && sa.established().is_some()
        })
    }

    /// Our inbound SPI of an AuthIP SA pair named by either SPI.
    pub(super) fn authip_spi_in(&self, now: Instant, spi: u32, inbound: bool) -> Option<u32> {
        if inbound {
            return self.authip.owns_child(spi).then_some(spi);
        }
        self.authip.quick_mode_sas(now).into_iter().find(|q| q.spi_out == spi).map(|q| q.spi_in)
    }
}
