//! HTTP SMS gateways (Tigo, Personal, Kannel, any form/JSON API).
