pub mod model;
pub mod prepare;
