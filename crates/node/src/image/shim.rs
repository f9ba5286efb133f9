//! TEMPORARY: stand-ins for the client's image calls until they merge.
#![allow(dead_code)]
use slicelab_client::{Client, ClientError};
pub trait ClientImages {
    async fn manifest(&self, d: &str) -> Result<Vec<u8>, ClientError>;
    async fn blob(&self, d: &str, offset: u64) -> Result<reqwest::Response, ClientError>;
}
impl ClientImages for Client {
    async fn manifest(&self, _d: &str) -> Result<Vec<u8>, ClientError> {
        Err(ClientError::Decode("todo".into()))
    }
    async fn blob(&self, _d: &str, _o: u64) -> Result<reqwest::Response, ClientError> {
        Err(ClientError::Decode("todo".into()))
    }
}
pub trait RetryAfter {
    fn retry_after(&self) -> Option<u64>;
}
impl RetryAfter for ClientError {
    fn retry_after(&self) -> Option<u64> {
        None
    }
}
