//! App subscriptions on the subscription's product: added and cancelled one by one, or all
//! together when the subscription ends.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use uuid::Uuid;

use super::checks::required;
use super::commands::AddApp;
use super::entitlement;
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::{AppStatus, Subscription};

impl Subscription {
    pub(super) async fn add_app(
        &mut self,
        cmd: AddApp,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        let app = required("app", &cmd.app)?;
        let plan = required("plan", &cmd.plan)?;
        if !entitlement::is_valid(&cmd.entitlement_number) {
            return Err(SubscriptionError::InvalidEntitlementNumber);
        }
        if self.apps.iter().any(|a| a.app_id == cmd.app_id) {
            return Err(SubscriptionError::AppAlreadyAdded);
        }
        if cmd.entitlement_number == self.entitlement_number
            || self
                .apps
                .iter()
                .any(|a| a.entitlement_number == cmd.entitlement_number)
        {
            return Err(SubscriptionError::DuplicateEntitlementNumber);
        }
        if self.active_apps().any(|a| a.app.eq_ignore_ascii_case(&app)) {
            return Err(SubscriptionError::AppAlreadyInstalled(app));
        }
        let event = SubscriptionEvent::AppSubscriptionAdded(AppSubscriptionAdded {
            app_id: cmd.app_id,
            entitlement_number: cmd.entitlement_number,
            app,
            plan,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn cancel_app(
        &mut self,
        app_id: Uuid,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let app = self
            .apps
            .iter()
            .find(|a| a.app_id == app_id)
            .ok_or(SubscriptionError::AppNotFound)?;
        if app.status == AppStatus::Cancelled {
            return Err(SubscriptionError::AppAlreadyCancelled);
        }
        let event = SubscriptionEvent::AppSubscriptionCancelled(AppSubscriptionCancelled {
            app_id,
            entitlement_number: app.entitlement_number.clone(),
            cause: AppCancellationCause::Requested,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn cancel_apps(
        &mut self,
        cause: AppCancellationCause,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) {
        let apps: Vec<(Uuid, String)> = self
            .active_apps()
            .map(|a| (a.app_id, a.entitlement_number.clone()))
            .collect();
        for (app_id, entitlement_number) in apps {
            let event = SubscriptionEvent::AppSubscriptionCancelled(AppSubscriptionCancelled {
                app_id,
                entitlement_number,
                cause,
                at,
            });
            sink.write(event, self).await;
        }
    }
}
