//! SIP rules by trigger and registered functions through the cache: an inbound call reads
//! the rule of its number or host and then the function of the application it starts, so
//! both are kept for the cache's time-to-live. Any rule write through this node drops every
//! cached rule (a rule changes its trigger's answer, and an update can enable or disable
//! it); a registry write drops that ARN. Everything else passes through.

use async_trait::async_trait;
use domain::sma::{FunctionEndpoint, SipMediaApplication, SipRule};

use super::{CachedRepository, Key, Value};
use crate::StoreError;
use crate::sma::{SmaCallRequest, SmaRepository, SmaSettingKind};

impl CachedRepository {
    fn rules_changed(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.retain(|k, _| !matches!(k, Key::SipRuleNumber(_) | Key::SipRuleHost(_)));
        drop(entries);
        self.announce();
    }

    async fn cached_rule<F>(&self, key: Key, read: F) -> Result<Option<SipRule>, StoreError>
    where
        F: std::future::Future<Output = Result<Option<SipRule>, StoreError>>,
    {
        if let Some(Value::SipRule(v)) = self.lookup(&key) {
            return Ok(v);
        }
        let g = self.generation();
        let v = read.await?;
        self.store(key, Value::SipRule(v.clone()), g);
        Ok(v)
    }
}

#[async_trait]
impl SmaRepository for CachedRepository {
    async fn insert_sip_media_application(
        &self,
        a: &SipMediaApplication,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.insert_sip_media_application(a, created_ms).await
    }

    async fn get_sip_media_application(
        &self,
        id: &str,
    ) -> Result<Option<SipMediaApplication>, StoreError> {
        self.inner.get_sip_media_application(id).await
    }

    async fn list_sip_media_applications(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipMediaApplication>, StoreError> {
        self.inner.list_sip_media_applications(after, limit).await
    }

    async fn update_sip_media_application(
        &self,
        a: &SipMediaApplication,
    ) -> Result<bool, StoreError> {
        self.inner.update_sip_media_application(a).await
    }

    async fn delete_sip_media_application(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_sip_media_application(id).await
    }

    async fn put_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.inner.put_sma_setting(sma_id, kind, body).await
    }

    async fn get_sma_setting(
        &self,
        sma_id: &str,
        kind: SmaSettingKind,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.get_sma_setting(sma_id, kind).await
    }

    async fn insert_sip_rule(&self, r: &SipRule, created_ms: i64) -> Result<(), StoreError> {
        let result = self.inner.insert_sip_rule(r, created_ms).await;
        self.rules_changed();
        result
    }

    async fn get_sip_rule(&self, id: &str) -> Result<Option<SipRule>, StoreError> {
        self.inner.get_sip_rule(id).await
    }

    async fn list_sip_rules(
        &self,
        sma_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SipRule>, StoreError> {
        self.inner.list_sip_rules(sma_id, after, limit).await
    }

    async fn update_sip_rule(&self, r: &SipRule) -> Result<bool, StoreError> {
        let result = self.inner.update_sip_rule(r).await;
        self.rules_changed();
        result
    }

    async fn delete_sip_rule(&self, id: &str) -> Result<bool, StoreError> {
        let result = self.inner.delete_sip_rule(id).await;
        self.rules_changed();
        result
    }

    async fn sip_rule_for_number(&self, e164: &str) -> Result<Option<SipRule>, StoreError> {
        let key = Key::SipRuleNumber(e164.to_owned());
        self.cached_rule(key, self.inner.sip_rule_for_number(e164))
            .await
    }

    async fn sip_rule_for_host(&self, host: &str) -> Result<Option<SipRule>, StoreError> {
        let key = Key::SipRuleHost(host.to_ascii_lowercase());
        self.cached_rule(key, self.inner.sip_rule_for_host(host))
            .await
    }

    async fn put_function(&self, f: &FunctionEndpoint) -> Result<(), StoreError> {
        let result = self.inner.put_function(f).await;
        let key = Key::Function(f.lambda_arn.clone());
        self.invalidate("", Some(&key));
        result
    }

    async fn function(&self, lambda_arn: &str) -> Result<Option<FunctionEndpoint>, StoreError> {
        let key = Key::Function(lambda_arn.to_owned());
        if let Some(Value::Function(v)) = self.lookup(&key) {
            return Ok(v);
        }
        let g = self.generation();
        let v = self.inner.function(lambda_arn).await?;
        self.store(key, Value::Function(v.clone()), g);
        Ok(v)
    }

    async fn list_functions(&self) -> Result<Vec<FunctionEndpoint>, StoreError> {
        self.inner.list_functions().await
    }

    async fn delete_function(&self, lambda_arn: &str) -> Result<bool, StoreError> {
        let result = self.inner.delete_function(lambda_arn).await;
        self.invalidate("", Some(&Key::Function(lambda_arn.to_owned())));
        result
    }

    async fn insert_sma_call_request(&self, r: &SmaCallRequest) -> Result<(), StoreError> {
        self.inner.insert_sma_call_request(r).await
    }

    async fn sma_transaction_known(
        &self,
        sma_id: &str,
        transaction_id: &str,
    ) -> Result<bool, StoreError> {
        self.inner
            .sma_transaction_known(sma_id, transaction_id)
            .await
    }

    async fn take_sma_call_requests(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SmaCallRequest>, StoreError> {
        self.inner.take_sma_call_requests(now_ms, limit).await
    }
}
