pub mod eval;
pub mod model;
pub mod prepare;
pub mod score;
pub mod train;
